-- grain: one row per reward-filtered rollout, in input order: what the
-- difficulty judge reads (module name, PyTorch reference, the rollout's final
-- message). Only these fields are projected, so the wide reasoning text is
-- not carried into Python.
with kept as (
    select * from reward_kept
),

final as (
    select
        example_id,
        info.module_name as module_name,
        info.python_code as python_code,
        completion[len(completion)].content as final_message
    from kept
)

select * from final
