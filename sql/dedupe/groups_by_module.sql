-- grain: one row per input rollout: the key dedupe keeps one row of, the
-- rollout's info.module_name (the seed's rule).
with rollouts as (
    select input_row, reward, info.module_name as group_key from input_rows
),

final as (
    select * from rollouts
)

select * from final
