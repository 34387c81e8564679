-- grain: one row per line of the input JSONL files, with input_row numbering
-- them in input order: file by file, in the order the files are given.
with source_rows as (
    select
        * exclude (ordinality),
        ordinality as input_row
    from read_json($paths, format = 'newline_delimited', union_by_name = true) with ordinality
),

final as (
    select * from source_rows
)

select * from final
