-- grain: one row per reward-filtered rollout, in input order: what the
-- difficulty judge reads (module name, PyTorch reference, and the completion's
-- messages with only role and content). The solution is picked from those
-- messages in Python by the one extractor (kbpipe.verify.extract): the last
-- assistant message holding one, since a multi-turn rollout may end with the
-- environment's feedback. Only these fields are projected, so the wide
-- reasoning text is not carried into Python.
with kept as (
    select * from reward_kept
),

final as (
    select
        example_id,
        info.module_name as module_name,
        info.python_code as python_code,
        list_transform(
            completion, lambda m: {'role': m.role, 'content': m.content}
        ) as messages
    from kept
)

select * from final
