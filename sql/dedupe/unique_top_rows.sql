-- grain: one row per module among the first $n rows of the unique table (the
-- best rewards), in output order, with every input column. Callers project
-- the few columns they print, and DuckDB then reads only those.
with winners as (
    select input_row, output_row from unique_winners
),

final as (
    select input_rows.* exclude (input_row)
    from input_rows
    inner join winners on input_rows.input_row = winners.input_row
    order by winners.output_row
    limit $n
)

select * from final
