-- grain: one row per Parquet file in $paths: its row count and uncompressed
-- size, from the footers alone (no data pages are read). Reading a footer is
-- also how open_input tells a Parquet file from anything else.
with footers as (
    select file_name, sum(total_uncompressed_size) as uncompressed_bytes
    from parquet_metadata($paths)
    group by file_name
),

final as (
    select file_name, uncompressed_bytes from footers
)

select * from final
