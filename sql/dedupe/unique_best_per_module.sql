-- grain: one row per info.module_name: its best rollout (chosen by
-- unique_winners.sql, kept as the table unique_winners), every input column,
-- plus output_row = its position in the unique table.
-- Rows come out unordered: DuckDB's sort cannot spill rows holding ~60 KB
-- strings, so kbpipe.sql_output puts large results in output_row order in
-- bounded memory. The join on input_row is pushed into the Parquet scan, so
-- only the winners' wide columns are decoded.
with rollouts as (
    select * from input_rows
),

winners as (
    select input_row, output_row from unique_winners
),

final as (
    select
        rollouts.* exclude (input_row),
        winners.output_row
    from rollouts
    inner join winners on rollouts.input_row = winners.input_row
)

select * from final
