-- grain: one row per run of a merge (base, synthetic): how many of its rows
-- are kept and the input_row of the last one, the first $limit rows of the run
-- (all when $limit is null). Narrow: only input_row is read.
with rollouts as (
    select
        input_row,
        case when input_row < $first_synthetic_row then 'base' else 'synthetic' end as run
    from input_rows
),

numbered as (
    select
        run,
        input_row,
        row_number() over (partition by run order by input_row) as row_in_run
    from rollouts
),

final as (
    select
        run,
        count(*) as n_rows,
        max(input_row) as last_input_row
    from numbered
    where $limit is null or row_in_run <= $limit
    group by run
)

select * from final
