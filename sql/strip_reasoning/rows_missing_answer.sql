-- grain: one row per input rollout whose first completion message has no
-- <answer>...</answer> block (or no message or content at all), in input
-- order: its input_row and example_id only, for the error that names them.
-- The test is has_answer_block.sql's, the one completion_answer_only.sql
-- filters on, so these are exactly the rows that step left out.
with rollouts as (
    select input_row, example_id, completion[1].content as content from input_rows
),

final as (
    select input_row, example_id
    from rollouts
    where not has_answer_block(content)
)

select * from final
