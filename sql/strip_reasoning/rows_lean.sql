-- grain: one row per input rollout, in input order, with every column and
-- input_row; completion messages hold only role and content
-- (kbpipe.io.sql.open_lean_input). What the Python path of strip-reasoning
-- reads for --answer-format auto/begin-python/fenced: it picks each row's
-- solution with kbpipe.verify.extract, which SQL cannot share.
with rollouts as (
    select * from input_rows_lean
),

final as (
    select * from rollouts
)

select * from final
