-- grain: one row per distinct info.python_code of the input (nulls left out):
-- each module is normalised and matched once, however many rollouts it has.
with rollouts as (
    select info.python_code as python_code from input_rows
),

final as (
    select distinct python_code
    from rollouts
    where python_code is not null
)

select * from final
