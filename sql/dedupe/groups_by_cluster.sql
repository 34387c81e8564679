-- grain: one row per input rollout: the key dedupe keeps one row of, the
-- near-duplicate cluster of its code (`dedupe --near-duplicates`; input_rows
-- is then clustered_rows.sql's view).
with rollouts as (
    select input_row, reward, module_cluster as group_key from input_rows
),

final as (
    select * from rollouts
)

select * from final
