-- grain: one row per input rollout that kbpipe verify passed (`dedupe
-- --require-verified`), with its grouped_rows key. A rollout is matched to
-- verified_rows (the verified table) by example_id and by its place among the
-- rollouts sharing that example_id, the n-th here with the n-th there: several
-- rollouts of one example carry one example_id, and the verified table keeps
-- its input's rows in order. A rollout the verified table lacks is not verified.
with rollouts as (
    select
        input_row,
        reward,
        group_key,
        example_id,
        row_number() over (partition by example_id order by input_row) as nth_of_example
    from grouped_rows
),

checked as (
    select
        example_id,
        verified,
        row_number() over (partition by example_id order by input_row) as nth_of_example
    from verified_rows
),

final as (
    select
        rollouts.input_row,
        rollouts.reward,
        rollouts.group_key
    from rollouts
    inner join checked
        on rollouts.example_id = checked.example_id
        and rollouts.nth_of_example = checked.nth_of_example
    where checked.verified
)

select * from final
