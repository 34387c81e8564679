-- grain: a scalar macro, has_answer_block(content): whether
-- regexp_extract(content, '(?s)<answer>.*?</answer>') finds a block, by two
-- plain searches. The leftmost match starts at the first <answer> whenever
-- any match exists, so there is one exactly when a </answer> follows the
-- first <answer>. Cheaper than the regex, which DuckDB would otherwise run a
-- second time for a filter. A null content has no block.
create or replace macro has_answer_block(content) as coalesce(
    strpos(content, '<answer>') > 0
    and strpos(substr(content, strpos(content, '<answer>') + 8), '</answer>') > 0,
    false
)
