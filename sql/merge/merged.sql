-- grain: one row per rollout of either run: the base run's rows first, then the
-- synthetic-prompt run's, each in input order, with data_source (the last
-- column) saying which run. Both runs' files are one scan (input_rows over the
-- base files, then the synthetic ones), so the rows stream out in order
-- without a union or a sort; rows before $first_synthetic_row are the base
-- run's. $last_base_row and $last_synthetic_row cut each run at a --limit
-- (null keeps all). The scan matches columns by name, so a column only one
-- run has is null in the other's rows.
with rollouts as (
    select
        *,
        case when input_row < $first_synthetic_row then 'base' else 'synthetic' end
            as data_source
    from input_rows
),

final as (
    select * exclude (input_row, data_source), data_source
    from rollouts
    where
        case data_source
            when 'base' then $last_base_row is null or input_row <= $last_base_row
            else $last_synthetic_row is null or input_row <= $last_synthetic_row
        end
)

select * from final
