-- grain: one row per group_key (info.module_name, or the near-duplicate cluster
-- with --near-duplicates; dedupe_groups holds it): the input_row of its highest-reward
-- rollout (the first in input order on a tie) and output_row = that row's
-- position in the unique table. That order is reward descending, and equal
-- rewards in the order their modules first appear in the input: the seed kept
-- winners in a dict keyed by module (first-appearance order), then ran a
-- stable sort on reward. Narrow columns only: the wide rows are fetched
-- afterwards by unique_best_per_module.sql.
with rollouts as (
    select input_row, reward, group_key from dedupe_groups
),

ranked as (
    select
        input_row,
        reward,
        row_number() over (
            partition by group_key order by reward desc, input_row
        ) as rank_in_module,
        min(input_row) over (partition by group_key) as module_first_input_row
    from rollouts
),

final as (
    select
        input_row,
        row_number() over (order by reward desc, module_first_input_row) - 1 as output_row
    from ranked
    where rank_in_module = 1
)

select * from final
