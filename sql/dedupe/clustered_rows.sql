-- grain: one row per input rollout, every input column plus module_cluster:
-- the near-duplicate cluster of its info.python_code (code_clusters: one row
-- per distinct code, from kbpipe.codematch.minhash). A rollout without code
-- is clustered by its module name alone.
with rollouts as (
    select * from unclustered_rows
),

clusters as (
    select * from code_clusters
),

final as (
    select
        rollouts.*,
        coalesce(clusters.module_cluster, 'module:' || rollouts.info.module_name)
            as module_cluster
    from rollouts
    left join clusters on rollouts.info.python_code = clusters.python_code
)

select * from final
