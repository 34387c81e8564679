-- grain: one row per input rollout whose first completion message contains
-- <answer>...</answer> (has_answer_block.sql), in input order. completion
-- becomes that one message with content = the first, shortest
-- <answer>...</answer> block (answer_block.sql: what Python's
-- re.search(r"<answer>(.*?)</answer>", s, re.DOTALL) finds). The role is kept
-- and every other message key (reasoning) goes; all other columns are
-- untouched. Reads input_rows_lean, whose messages hold only role
-- and content (kbpipe.sql.open_lean_input).
with rollouts as (
    select * from input_rows_lean
),

answered as (
    -- the cheap test as the filter, so the block is cut out of kept rows only
    select * from rollouts
    where has_answer_block(completion[1].content)
),

final as (
    select
        * exclude (input_row)
        replace (
            [{'role': completion[1].role, 'content': answer_block(completion[1].content)}]
            as completion
        )
    from answered
)

select * from final
