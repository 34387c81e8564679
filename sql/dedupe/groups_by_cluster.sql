-- grain: one row per input rollout: the key dedupe keeps one row of, the
-- near-duplicate cluster of its code (`dedupe --near-duplicates`; input_rows
-- is then clustered_rows.sql's view); example_id pairs it with the verified
-- table under --require-verified.
with rollouts as (
    select input_row, example_id, reward, module_cluster as group_key from input_rows
),

final as (
    select * from rollouts
)

select * from final
