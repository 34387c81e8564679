-- grain: one row for the whole deduplicated table: score statistics as the
-- seed printed them (scores that are not positive count apart from the valid ones).
-- Read from the input's reward column and the winners' input_row: the same
-- rows as the written unique table, without opening it again.
with unique_rows as (
    select input_rows.reward
    from input_rows
    inner join unique_winners on input_rows.input_row = unique_winners.input_row
),

final as (
    select
        count(*) as n_rows,
        count(*) filter (where reward > 0) as n_valid_score,
        count(*) filter (where not reward > 0) as n_zero_score,
        min(reward) filter (where reward > 0) as valid_score_min,
        max(reward) filter (where reward > 0) as valid_score_max,
        avg(reward) filter (where reward > 0) as valid_score_mean
    from unique_rows
)

select * from final
