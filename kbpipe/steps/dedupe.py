"""Step 3, `kbpipe dedupe`: keep the best-reward rollout per module.

Exactly the seed's rules (sql/unique_best_per_module.sql): group by
`info.module_name`, keep the highest reward, the first row in input order on a
tie; output sorted by reward descending, equal rewards in the order their
modules first appear in the input. A null or NaN reward cannot be ranked (the
seed would have crashed on it), so it is an error naming the example_ids.

`--near-duplicates` groups by code instead of by name: every distinct
`info.python_code` gets a `module_cluster` (MinHash + LSH over its normalised
token stream, `kbpipe.codematch.minhash`; `--similarity 0.85`), the best row
per cluster is kept, and the output carries the `module_cluster` column, which
the `module` split then assigns by, so no cluster straddles train/validation.
The stats hold the cluster size distribution.

`--require-verified` chooses among the rows `kbpipe verify` passed only (the
verified table, `--verified PATH`, paired by example_id): the same rules on
those rows, and every other row is dropped as `not_verified`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import duckdb

from kbpipe.codematch import DEFAULT_SIMILARITY
from kbpipe.config import Settings
from kbpipe.errors import ConfigError, InputError
from kbpipe.io import sql, sql_output
from kbpipe.io.lineage import ResolvedInput, StepInput, StepResult, as_resolved

DUPLICATE = "duplicate_module"
NOT_VERIFIED = "not_verified"
TOP_N = 10

EXAMPLES = """examples:
  kbpipe dedupe --no-upload                 # outputs/$DATA_MODEL/filtered -> unique
  kbpipe dedupe -i filtered.parquet -o unique.parquet --no-upload
  kbpipe dedupe --near-duplicates --similarity 0.9 --no-upload   # best row per code cluster
  kbpipe dedupe --require-verified --no-upload   # best row per module among verified rows"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("near duplicates")
    g.add_argument(
        "--near-duplicates",
        action="store_true",
        help="keep the best row per cluster of near-identical code (adds module_cluster), "
        "not per module name",
    )
    g.add_argument(
        "--similarity",
        type=float,
        default=DEFAULT_SIMILARITY,
        metavar="F",
        help="estimated Jaccard similarity (0-1) from which two modules share a cluster "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--workers", type=int, default=None, metavar="N", help="processes (default: CPUs)"
    )
    v = parser.add_argument_group("verified rows")
    v.add_argument(
        "--require-verified",
        action="store_true",
        help="choose among rows that kbpipe verify passed only; the others are dropped "
        "as not_verified",
    )
    v.add_argument(
        "--verified",
        type=Path,
        metavar="PATH",
        help="the verified table to read (default: the run's verified_dataset.parquet)",
    )


def dedupe(
    inputs: StepInput,
    output: Path,
    settings: Settings,
    *,
    limit: int | None = None,
    near_duplicates: bool = False,
    similarity: float = DEFAULT_SIMILARITY,
    workers: int | None = None,
    verified: Path | None = None,
) -> StepResult:
    """Write the best-reward row per `info.module_name` (or per near-duplicate cluster);
    with `verified` (a table written by `kbpipe verify`), among its verified rows only."""
    resolved = as_resolved(inputs)
    output = Path(output)
    params: dict[str, Any] = {"limit": limit, "near_duplicates": near_duplicates}
    if near_duplicates:
        params["similarity"] = similarity
    if verified is not None:
        params["verified"] = str(verified)
    result = StepResult("dedupe", output=output, inputs=resolved.lineage(), params=params)
    with sql.session(output) as con:
        table = sql.open_input(con, resolved.paths, limit=limit)
        table.require("example_id")
        table.require_number("reward")
        table.require_struct_field("info", "module_name", string=True)
        if near_duplicates:
            table.require_struct_field("info", "python_code")
        with sql.reading(table.label):
            if near_duplicates:
                result.metrics["clusters"] = _cluster(con, table, similarity, workers)
            _refuse_missing_rewards(con, table)
            result.rows_in = table.n_rows
            groups = "groups_by_cluster" if near_duplicates else "groups_by_module"
            n_candidates = _choose_among(con, groups, verified, result)
            sql.run(con, "unique_winners").create("unique_winners")
            [(n_unique,)] = con.table("unique_winners").count("*").fetchall()
            best = sql.run(con, "unique_best_per_module")
            result.rows_out = sql_output.write_ordered(
                con, best, output, n_rows=n_unique, row_bytes=table.row_bytes
            )
            result.drop(DUPLICATE, n_candidates - result.rows_out)
            result.metrics |= _summary(con)
    return result.finish(settings)


def _choose_among(
    con: duckdb.DuckDBPyConnection, groups: str, verified: Path | None, result: StepResult
) -> int:
    """Make `dedupe_groups`, the rows to choose among: every row, or the verified ones
    (the rest dropped as not_verified). Returns how many there are."""
    if verified is None:
        sql.run(con, groups).create_view("dedupe_groups")
        return result.rows_in
    sql.run(con, groups).create_view("grouped_rows")
    checked = sql.open_input(con, [verified], view="verified_rows")
    checked.require("example_id", "verified")
    with sql.reading(checked.label):
        ambiguous = [row[0] for row in sql.run(con, "verified_ambiguous_examples").fetchall()]
        if ambiguous:
            raise InputError(
                f"{checked.label}: has fewer rows than this input for example_id "
                f"{sql.format_ids(ambiguous)}, each shared by several rollouts here, so "
                "which of them passed is unknown; verify this table without --drop-failed "
                "or --limit"
            )
        sql.run(con, "verified_groups").create("dedupe_groups")
        [(n_verified,)] = con.table("dedupe_groups").count("*").fetchall()
    result.drop(NOT_VERIFIED, result.rows_in - n_verified)
    result.metrics["n_verified_rows"] = n_verified
    return n_verified


def _cluster(
    con: duckdb.DuckDBPyConnection, table: sql.InputTable, similarity: float, workers: int | None
) -> dict:
    """Make `input_rows` the input with module_cluster; return the cluster statistics."""
    import pyarrow as pa

    codes = [code for (code,) in sql.run(con, "distinct_module_code").fetchall()]
    # numpy and rensa load only for --near-duplicates: a plain dedupe starts without them.
    from kbpipe.codematch.minhash import module_clusters
    from kbpipe.codematch.streams import default_workers

    clusters = module_clusters(codes, similarity=similarity, workers=workers or default_workers())
    con.register(
        "code_clusters",
        pa.table({"python_code": codes, "module_cluster": clusters.cluster_ids}),
    )
    # The input again under another name (views are lazy: nothing is read twice), so
    # clustered_rows.sql can read it while taking the name input_rows.
    sql.open_input(con, table.paths, view="unclustered_rows", limit=table.limit)
    sql.run(con, "clustered_rows").create_view("input_rows")
    return {
        "n_modules": clusters.n_distinct,
        "n_clusters": sum(clusters.size_histogram.values()),
        "n_modules_unparsed": clusters.n_unparsed,
        # distinct modules in a cluster -> how many clusters have that many
        "cluster_sizes": {str(k): v for k, v in clusters.size_histogram.items()},
    }


def _refuse_missing_rewards(con: duckdb.DuckDBPyConnection, table: sql.InputTable) -> None:
    ids = [row[0] for row in sql.run(con, "rows_missing_reward").fetchall()]
    if ids:
        raise InputError(
            f"{table.label}: column 'reward' is null or NaN for {len(ids)} row(s), so no best "
            f"row can be chosen: example_id {sql.format_ids(ids)}"
        )


def _summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The seed's statistics over the unique rows, from the input's narrow columns."""
    stats = sql.fetch_one(con, "unique_summary")
    rows = sql.run(con, "unique_top_rows", n=TOP_N)
    difficulty = "difficulty" if "difficulty" in rows.columns else "null"
    top = rows.project(f"info.module_name, reward, {difficulty}").fetchall()
    return {
        **stats,
        "top": [{"module_name": n, "reward": r, "difficulty": d} for n, r, d in top],
    }


def summary_lines(result: StepResult) -> list[str]:
    """The seed's FILTERING RESULTS block; top rows name the module (the seed printed 'Unknown')."""
    m = result.metrics
    n_not_verified = result.dropped.get(NOT_VERIFIED, 0)
    not_verified = (
        [f"  not verified:            {n_not_verified:,}"] if "n_verified_rows" in m else []
    )
    lines = [
        f"Original entries:          {result.rows_in:,}",
        f"Unique modules (kept):     {result.rows_out:,}",
        f"Entries removed:           {result.rows_in - result.rows_out:,}",
        *not_verified,
        f"Reduction:                 {(1 - result.rows_out / result.rows_in) * 100:.1f}%",
        "",
        f"Entries with valid score:  {m['n_valid_score']:,}",
        f"Entries with score = 0:    {m['n_zero_score']:,}",
    ]
    if m["n_valid_score"]:
        lines += [
            "",
            "Score statistics (valid only):",
            f"  Min score:   {m['valid_score_min']:.2f}",
            f"  Max score:   {m['valid_score_max']:.2f}",
            f"  Avg score:   {m['valid_score_mean']:.2f}",
        ]
    lines += ["", f"Top {TOP_N} entries by score:"]
    for i, row in enumerate(m["top"], 1):
        name = row["module_name"] if row["module_name"] is not None else "Unknown"
        difficulty = row["difficulty"] if row["difficulty"] is not None else "N/A"
        lines.append(f"  {i:2d}. {name:40s} score={row['reward']:.2f} d={difficulty}")
    return lines


READS = "filtered"
WRITES = ("unique", "")


def check_args(args: argparse.Namespace, settings: Settings) -> None:
    if args.verified is not None and not args.require_verified:
        raise ConfigError("--verified names the table --require-verified reads; pass both")
    path = _verified_table(args, settings)
    if path is not None and not path.is_file():
        build = settings.hint("`kbpipe verify`", "`make verified`")
        raise InputError(
            f"{path}: no such file; --require-verified reads the verified table: build it "
            f"with {build}, or name one with --verified PATH"
        )


def _verified_table(args: argparse.Namespace, settings: Settings) -> Path | None:
    if not args.require_verified:
        return None
    return Path(args.verified or settings.table_path("verified"))


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepResult:
    return dedupe(
        inputs,
        output,
        settings,
        limit=settings.limit(args.limit),
        near_duplicates=args.near_duplicates,
        similarity=args.similarity,
        workers=args.workers,
        verified=_verified_table(args, settings),
    )


report_lines = summary_lines
