-- grain: one row per row of one input Parquet file, with input_row = its
-- position in the file. The same rows and numbering as
-- input_rows_from_parquet.sql gives a single file, but input_row is the
-- reader's file_row_number itself rather than arithmetic on it, so a join or
-- filter on input_row is pushed into the scan and DuckDB decodes the wide
-- columns of matching rows only (dedupe reads 48 rows of 8,000 this way).
with source_rows as (
    select
        *,
        file_row_number as input_row
    from read_parquet($paths)
),

final as (
    select * from source_rows
)

select * from final
