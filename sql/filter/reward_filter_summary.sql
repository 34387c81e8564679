-- grain: one row for the whole input: how many rollouts pass reward > $threshold,
-- how many are dropped and why, and the reward spread of the rows kept
-- (the first $limit passing rows when a limit is set). last_kept_input_row
-- tells filtered_by_reward.sql where the limit cuts, so it needs no sort.
with rollouts as (
    select input_row, reward from input_rows
),

classified as (
    select
        input_row,
        reward,
        case
            when reward is null or isnan(reward) then 'reward_missing'
            when reward > $threshold then 'passing'
            else 'reward_at_or_below_threshold'
        end as outcome
    from rollouts
),

kept as (
    select input_row, reward
    from classified
    where outcome = 'passing'
    order by input_row
    limit $limit
),

final as (
    select
        (select count(*) from classified) as n_rows,
        (select count(*) from classified where outcome = 'passing') as n_passing,
        (select count(*) from classified where outcome = 'reward_at_or_below_threshold')
            as n_at_or_below_threshold,
        (select count(*) from classified where outcome = 'reward_missing') as n_reward_missing,
        (select count(*) from kept) as n_kept,
        (select max(input_row) from kept) as last_kept_input_row,
        (select min(reward) from kept) as kept_reward_min,
        (select max(reward) from kept) as kept_reward_max,
        (select avg(reward) from kept) as kept_reward_mean
)

select * from final
