-- grain: one row per input rollout: its input_row, the verdict on its module's
-- code (code_verdicts: one row per distinct python_code) and output_row = its
-- position in the output, input order kept. With $drop the contaminated rows
-- get no output_row. Narrow columns only: the wide rows are joined afterwards
-- by decontaminated_rows.sql.
with rollouts as (
    select input_row, info.python_code as python_code from input_rows
),

verdicts as (
    select * from code_verdicts
),

judged as (
    select
        rollouts.input_row,
        coalesce(verdicts.contaminated, false) as contaminated,
        verdicts.benchmark_match,
        coalesce(verdicts.benchmark_overlap, 0.0) as benchmark_overlap
    from rollouts
    left join verdicts on rollouts.python_code = verdicts.python_code
),

final as (
    select
        *,
        case
            when $drop and contaminated then null
            else row_number() over (
                partition by ($drop and contaminated) order by input_row
            ) - 1
        end as output_row
    from judged
)

select * from final
