-- grain: one row per input rollout whose input_row is in $input_rows (the
-- rows in which kbpipe.verify.extract found no solution in $answer_format),
-- in input order, with the reason first and every input column: the rejects
-- of strip-reasoning --on-missing drop for the formats other than answer-tags.
with rollouts as (
    select * from input_rows
),

missing as (
    select unnest($input_rows::bigint[]) as input_row
),

rejected as (
    select
        'no solution in ' || $answer_format || ' format in any assistant message' as reason,
        rollouts.*
    from rollouts
    semi join missing using (input_row)
),

final as (
    select * exclude (input_row) from rejected order by input_row
)

select * from final
