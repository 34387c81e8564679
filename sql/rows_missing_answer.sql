-- grain: one row per input rollout whose first completion message has no
-- <answer>...</answer> block (or no message or content at all), in input
-- order: its input_row, example_id and output_row (its position among
-- these rows) only. The test is the one
-- completion_answer_only.sql filters on (a </answer> after the first
-- <answer>), so these are exactly the rows that step left out.
with rollouts as (
    select input_row, example_id, completion[1].content as content from input_rows
),

missing as (
    select input_row, example_id
    from rollouts
    where not coalesce(
        strpos(content, '<answer>') > 0
        and strpos(substr(content, strpos(content, '<answer>') + 8), '</answer>') > 0,
        false
    )
),

final as (
    select
        input_row,
        example_id,
        row_number() over (order by input_row) - 1 as output_row
    from missing
)

select * from final
