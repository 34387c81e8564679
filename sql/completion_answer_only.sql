-- grain: one row per input rollout whose first completion message contains
-- <answer>...</answer>, in input order. completion becomes that one message
-- with content = the first, shortest <answer>...</answer> block ((?s): dot
-- matches newline; RE2's leftmost non-greedy match equals Python's
-- re.search(r"<answer>(.*?)</answer>", s, re.DOTALL)). The role is kept and
-- every other message key (reasoning) goes; all other columns are untouched.
with rollouts as (
    select * from input_rows
),

answers as (
    select
        *,
        regexp_extract(completion[1].content, '(?s)<answer>.*?</answer>') as answer_block,
        -- the same test as the regex, without running it twice (has_answer_block.sql)
        has_answer_block(completion[1].content) as has_answer
    from rollouts
),

final as (
    select
        * exclude (input_row, answer_block, has_answer)
        replace ([{'role': completion[1].role, 'content': answer_block}] as completion)
    from answers
    where has_answer
)

select * from final
