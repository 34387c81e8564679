-- grain: one row per contaminated input rollout, in input order, with the
-- reason naming the KernelBench problem it copies.
with rollouts as (
    select * from input_rows
),

verdicts as (
    select * from row_verdicts where contaminated
),

final as (
    select
        'matches KernelBench ' || verdicts.benchmark_match as reason,
        rollouts.* exclude (input_row),
        verdicts.contaminated,
        verdicts.benchmark_match,
        verdicts.benchmark_overlap
    from rollouts
    inner join verdicts on rollouts.input_row = verdicts.input_row
    order by rollouts.input_row
)

select * from final
