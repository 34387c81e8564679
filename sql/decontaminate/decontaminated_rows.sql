-- grain: one row per kept input rollout (every one unless --drop), every input
-- column plus contaminated, benchmark_match, benchmark_overlap, and output_row
-- for sql_output.write_ordered. The join on input_row is pushed into the
-- Parquet scan, so only the kept rows' wide columns are decoded.
with rollouts as (
    select * from input_rows
),

verdicts as (
    select * from row_verdicts where output_row is not null
),

final as (
    select
        rollouts.* exclude (input_row),
        verdicts.contaminated,
        verdicts.benchmark_match,
        verdicts.benchmark_overlap,
        verdicts.output_row
    from rollouts
    inner join verdicts on rollouts.input_row = verdicts.input_row
)

select * from final
