-- grain: one row per example_id that several input rollouts share and that
-- verified_rows (the verified table) holds fewer times: which of its rollouts
-- passed is then unknown, because that table left rows out (verify
-- --drop-failed or --limit) and rollouts are paired by their place among
-- their example_id's rows. Just the ids, for an error message.
with here as (
    select example_id, count(*) as n_rows
    from grouped_rows
    group by example_id
),

there as (
    select example_id, count(*) as n_rows
    from verified_rows
    group by example_id
),

final as (
    select here.example_id
    from here
    inner join there on here.example_id = there.example_id
    where here.n_rows > 1 and there.n_rows < here.n_rows
    order by here.example_id
)

select * from final
