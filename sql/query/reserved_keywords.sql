-- grain: one row per keyword DuckDB reserves, which a view name must quote
-- ("unique" is one: `select * from "unique"`).
with keywords as (
    select keyword_name, keyword_category from duckdb_keywords()
),

final as (
    select keyword_name
    from keywords
    where keyword_category = 'reserved'
)

select * from final
