-- grain: one row per input rollout whose reward is null or NaN (no best row
-- can be chosen by it), in input order; just the ids for an error message.
with rollouts as (
    select input_row, example_id, reward from input_rows
),

final as (
    select example_id
    from rollouts
    where reward is null or isnan(reward)
    order by input_row
)

select * from final
