-- grain: one row per input rollout whose first completion message has no
-- <answer>...</answer> block (or no message or content at all), in input
-- order (a filtered scan keeps it), with the reason first and every input
-- column: the rejects of strip-reasoning --on-missing drop (the test is
-- has_answer_block.sql's, as in completion_answer_only.sql). One scan
-- of the input, rather than listing the rows first and fetching them: the
-- reasoning beside each answer is decompressed either way.
with rollouts as (
    select * from input_rows
),

final as (
    select
        'no <answer>...</answer> in completion[0].content' as reason,
        * exclude (input_row)
    from rollouts
    where not has_answer_block(completion[1].content)
)

select * from final
