-- grain: one row per reward-filtered rollout, unchanged, plus empty rating
-- columns so the filtered table has the same schema with or without a rater.
with kept as (
    select * from reward_kept
),

final as (
    select
        *,
        cast(null as varchar) as difficulty,
        cast(null as varchar) as evaluation_raw
    from kept
)

select * from final
