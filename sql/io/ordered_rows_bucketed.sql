-- grain: one row per row of ordered_rows (a result with output_row = its
-- position, 0..n-1), with output_bucket = output_row // $bucket_rows: which of
-- kbpipe.sql_output.write_ordered's buckets of consecutive output rows it goes to.
-- Computed here rather than in pyarrow, whose Python-to-Arrow scalar
-- conversion imports pandas (a second of start-up).
with ordered as (
    select * from ordered_rows
),

final as (
    select
        *,
        output_row // $bucket_rows as output_bucket
    from ordered
)

select * from final
