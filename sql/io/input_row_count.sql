-- grain: one row: how many rows the given JSONL files hold (the input_row
-- numbering of input_rows_from_jsonl.sql runs on across files, so this says
-- where the next file's rows start).
with source_rows as (
    select 1 as one
    from read_json($paths, format = 'newline_delimited', union_by_name = true)
),

final as (
    select count(*) as n_rows from source_rows
)

select * from final
