-- grain: one row per input rollout: the key dedupe keeps one row of, the
-- rollout's info.module_name (the seed's rule); example_id pairs it with the
-- verified table under --require-verified.
with rollouts as (
    select input_row, example_id, reward, info.module_name as group_key from input_rows
),

final as (
    select * from rollouts
)

select * from final
