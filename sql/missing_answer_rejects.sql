-- grain: one row per input rollout listed in missing_answer_rows (made from
-- rows_missing_answer.sql), with the reason first, every input column, and
-- output_row = its position in input order; rows come out unordered and
-- kbpipe.sql_output.write_ordered puts them in that order (the rejects of
-- strip-reasoning --on-missing drop). The join on input_row is pushed into
-- the scan, so only these rows' wide columns are read.
with missing as (
    select input_row, output_row from missing_answer_rows
),

final as (
    select
        'no <answer>...</answer> in completion[0].content' as reason,
        input_rows.* exclude (input_row),
        missing.output_row
    from input_rows
    inner join missing on input_rows.input_row = missing.input_row
)

select * from final
