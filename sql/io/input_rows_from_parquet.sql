-- grain: one row per row of the input Parquet files, with input_row numbering
-- them in input order: file by file, in the order the files are given.
-- file_index and file_row_number are the reader's virtual columns; combining
-- them arithmetically keeps the order without sorting the wide rows
-- ($file_stride is kbpipe.sql.PARQUET_FILE_STRIDE, 2**32).
with source_rows as (
    select
        *,
        cast(file_index as bigint) * $file_stride + file_row_number as input_row
    from read_parquet($paths, union_by_name = true)
),

final as (
    select * from source_rows
)

select * from final
