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
        -- Whether that regex matches, by two plain searches: the leftmost
        -- match starts at the first <answer> whenever any match exists, so
        -- there is one exactly when a </answer> follows the first <answer>.
        -- DuckDB would otherwise run the regex twice, once for this filter.
        coalesce(
            strpos(completion[1].content, '<answer>') > 0
            and strpos(
                substr(completion[1].content, strpos(completion[1].content, '<answer>') + 8),
                '</answer>'
            ) > 0,
            false
        ) as has_answer
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
