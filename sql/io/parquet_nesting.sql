-- grain: one row for the Parquet files in $paths: the most deeply nested column and
-- how deep it nests (the row counting one, as for JSON; the `list` groups that
-- Parquet puts inside each list are not levels of their own). From the
-- footers alone; reading one is also how open_input tells Parquet from anything else.
with leaves as (
    select
        file_name,
        string_split(path_in_schema, ', ') as parts
    from parquet_metadata($paths)
),

depths as (
    select
        file_name,
        parts[1] as column_name,
        len(list_filter(parts, lambda part: part <> 'list')) as nesting
    from leaves
),

final as (
    select
        arg_max(column_name, nesting) as column_name,
        max(nesting) as nesting
    from depths
)

select * from final
