-- grain: one row per input rollout whose reward is strictly above $threshold,
-- in input order, up to input row $last_input_row (where a --limit cuts; null
-- keeps all). isnan is checked because DuckDB orders NaN above every number,
-- so a NaN reward would pass, where Python's `nan > threshold` is False.
with rollouts as (
    select * from input_rows
),

final as (
    select * exclude (input_row)
    from rollouts
    where
        reward > $threshold
        and not isnan(reward)
        and ($last_input_row is null or input_row <= $last_input_row)
)

select * from final
