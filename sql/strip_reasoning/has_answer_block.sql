-- grain: a scalar macro, has_answer_block(content): whether content holds an
-- <answer>...</answer> block, i.e. whether Python's
-- re.search(r"<answer>(.*?)</answer>", content, re.DOTALL) matches. That is
-- exactly when some </answer> starts after the end of an <answer>, which is
-- what this LIKE pattern says ('%' matches newlines too). DuckDB runs a
-- pattern of plain segments as substring searches, far cheaper than the regex.
-- A null content has no block.
create or replace macro has_answer_block(content) as coalesce(
    content like '%<answer>%</answer>%', false
)
