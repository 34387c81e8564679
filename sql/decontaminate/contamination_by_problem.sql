-- grain: one row per KernelBench problem that at least one input rollout
-- matches: how many rollouts and distinct modules match it, and how closely.
with verdicts as (
    select * from row_verdicts where contaminated
),

rollouts as (
    select input_row, info.python_code as python_code from input_rows
),

final as (
    select
        verdicts.benchmark_match,
        count(*) as n_rows,
        count(distinct rollouts.python_code) as n_modules,
        max(verdicts.benchmark_overlap) as max_overlap
    from verdicts
    inner join rollouts on verdicts.input_row = rollouts.input_row
    group by verdicts.benchmark_match
    order by n_rows desc, verdicts.benchmark_match
)

select * from final
