-- grain: one row per input rollout whose reward is null or NaN, in input order,
-- with the reason it was rejected.
with rollouts as (
    select * from input_rows
),

final as (
    select
        case when reward is null then 'reward is null' else 'reward is NaN' end as reason,
        * exclude (input_row)
    from rollouts
    where reward is null or isnan(reward)
    order by input_row
)

select * from final
