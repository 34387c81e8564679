"""`kbpipe query "SQL"`: ad-hoc DuckDB SQL over the current run's outputs.

Every output in `outputs/{run}/` becomes a view named after what it holds:
`evals`, `filtered`, `unique_rows`, `synthetic_prompts`, `seqlen_filtered` (and
`seqlen`), `filtered_no_reasoning`, `filtered_merged`, ...; each rejects file
becomes `<table>_rejects`, and `stats` has one row per `*.stats.json`. A name
that is an SQL keyword gets `_rows` (`unique` is one), so every query runs as
written; the quoted `"unique"` works too. Nested columns (lists, structs) are
written to CSV as JSON text, which any CSV reader keeps in one cell.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io import sql, sql_output
from kbpipe.io.tables import _first_line, atomic_output

EXAMPLES = """examples:
  kbpipe query                                    # list the views
  kbpipe query "select difficulty, count(*) from filtered group by 1"
  kbpipe query "select * from unique_rows" --format parquet -o top.parquet
  kbpipe query "select * from filtered limit 5" -o five.csv   # nested columns as JSON
  kbpipe query --init-script views.sql && duckdb -init views.sql"""

QUERY_MEMORY_LIMIT = "4GB"
FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class View:
    name: str
    reader: str  # parquet | jsonl | json (whole JSON documents, for stats files)
    paths: tuple[Path, ...]
    # False for the quoted-keyword alias (`"unique"`) of a listed `_rows` view.
    listed: bool = True


# Table names that are SQL keywords (sql/query/reserved_keywords.sql lists all of
# DuckDB's): their views are `<name>_rows`, so queries need no quotes.
RESERVED_NAMES = {"unique"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", nargs="?", help="the query; without it, list the views")
    parser.add_argument(
        "--format",
        choices=["table", "csv", "json", "parquet"],
        help="output format (default: table on screen, else from -o's extension)",
    )
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="save the result")
    parser.add_argument(
        "--max-rows", type=int, default=40, metavar="N", help="rows shown as a table (default 40)"
    )
    parser.add_argument(
        "--init-script",
        type=Path,
        metavar="FILE",
        help="write CREATE VIEW statements for the duckdb CLI (`duckdb -init FILE`)",
    )


def discover_views(folder: Path) -> list[View]:
    """One view per table, rejects file and the stats files found in `folder`."""
    views: dict[str, View] = {}
    if not folder.is_dir():
        return []
    for path in sorted(folder.glob("*.parquet")):
        name = _view_name(path.stem)
        if name in RESERVED_NAMES:
            views[name] = View(name, "parquet", (path,), listed=False)
            name = f"{name}_rows"
        views[name] = View(name, "parquet", (path,))
    seqlen = [v for v in views.values() if v.name.startswith("seqlen_")]
    if seqlen and "seqlen" not in views:
        chosen = views.get("seqlen_filtered", seqlen[0])
        views["seqlen"] = View("seqlen", "parquet", chosen.paths)
    for path in sorted(folder.glob("*.rejects.jsonl")):
        name = _view_name(path.name.removesuffix(".rejects.jsonl")) + "_rejects"
        views[name] = View(name, "jsonl", (path,))
    stats = tuple(sorted(folder.glob("*.stats.json")))
    if stats:
        views["stats"] = View("stats", "json", stats)
    return list(views.values())


def _view_name(stem: str) -> str:
    name = stem.removesuffix("_dataset")
    return re.sub(r"\W", "_", name).lower()


def create_views(con: duckdb.DuckDBPyConnection, views: list[View]) -> list[View]:
    """Create the views that can be read; warn about (and leave out) a file that cannot.

    One broken file (a half-copied table, stats files whose shapes clash) should
    not stop queries over all the others.
    """
    created = []
    for view in views:
        files = [str(p) for p in view.paths]
        try:
            if view.reader == "parquet":
                rel = con.read_parquet(files)
            elif view.reader == "jsonl":
                rel = con.read_json(files, format="newline_delimited")
            else:
                rel = con.read_json(files, union_by_name=True, filename=True)
            rel.create_view(view.name, replace=True)
        except duckdb.Error as exc:
            if view.listed:  # an alias of a listed view fails with it: say it once
                reason = _first_line(exc)
                print(f"kbpipe query: no view {view.name!r}: {files[0]}: {reason}", file=sys.stderr)
            continue
        created.append(view)
    return created


def view_script(views: list[View]) -> str:
    """CREATE VIEW statements for the duckdb CLI, which has no parameter binding.

    Paths are absolute and quoted through sql.quote_literal.
    """
    readers = {
        "parquet": "read_parquet([{}])",
        "jsonl": "read_json([{}], format = 'newline_delimited')",
        "json": "read_json([{}], union_by_name = true, filename = true)",
    }
    lines = ["-- views over kbpipe outputs; written by `kbpipe query --init-script`"]
    for view in views:
        files = ", ".join(sql.quote_literal(str(p.resolve())) for p in view.paths)
        source = readers[view.reader].format(files)
        lines.append(
            f"create or replace view {sql.quote_identifier(view.name)} as select * from {source};"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, settings: Settings) -> int:
    views = discover_views(settings.model_dir)
    if args.init_script is not None:
        with atomic_output(args.init_script) as tmp:
            tmp.write_text(view_script(views), encoding="utf-8")
        print(f"wrote {len(views)} view(s) to {args.init_script}", file=sys.stderr)
        if args.sql is None:
            return 0
    # Ad-hoc queries get more room than the steps' tight limit; they are run by hand.
    con = sql.connect(memory_limit=QUERY_MEMORY_LIMIT)
    views = create_views(con, views)
    if args.sql is None:
        _list_views(con, views, settings.model_dir)
        return 0
    try:
        rel = con.sql(args.sql)
        if rel is None:  # a statement without a result, e.g. SET
            return 0
        fmt = _output_format(args)
        if args.output is not None:
            _save(rel, args.output, fmt)
            print(f"wrote {args.output}", file=sys.stderr)
        elif fmt == "table":
            rel.show(max_rows=args.max_rows, max_width=shutil.get_terminal_size().columns)
        elif fmt == "csv":
            sys.stdout.write(_nested_as_json(rel).pl().write_csv())
        elif fmt == "json":
            sys.stdout.write(rel.pl().write_ndjson())
        else:
            raise InputError("--format parquet needs -o FILE")
    except duckdb.Error as exc:
        names = (
            ", ".join(v.name for v in views if v.listed)
            or f"none (no outputs in {settings.model_dir})"
        )
        raise InputError(f"query failed: {exc}\nviews: {names}") from exc
    return 0


def _output_format(args: argparse.Namespace) -> str:
    if args.format is not None:
        return args.format
    if args.output is None:
        return "table"
    fmt = FORMATS.get(args.output.suffix.lower())
    if fmt is None:
        raise InputError(f"{args.output}: unknown format; use .csv, .json, .jsonl or .parquet")
    return fmt


def _save(rel: duckdb.DuckDBPyRelation, dest: Path, fmt: str) -> None:
    if fmt == "table":
        raise InputError("--format table cannot be saved; use csv, json or parquet")
    with atomic_output(dest) as tmp:
        if fmt == "csv":
            _nested_as_json(rel).write_csv(str(tmp), header=True)
        else:
            sql_output.write_relation_to(rel, tmp, "jsonl" if fmt == "json" else "parquet")


def _nested_as_json(rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """The relation with list, struct and map columns as JSON text, for CSV."""
    nested = {"list", "struct", "map", "array", "union"}
    if not any(t.id in nested for t in rel.types):
        return rel
    columns = [
        f"to_json({sql.quote_identifier(c)})::varchar as {sql.quote_identifier(c)}"
        if t.id in nested
        else sql.quote_identifier(c)
        for c, t in zip(rel.columns, rel.types, strict=True)
    ]
    return rel.project(", ".join(columns))


def _list_views(con: duckdb.DuckDBPyConnection, views: list[View], folder: Path) -> None:
    views = [v for v in views if v.listed]
    if not views:
        print(f"no outputs in {folder} yet")
        return
    reserved = {row[0] for row in sql.run(con, "reserved_keywords").fetchall()}
    table = pl.DataFrame(
        {
            # As it must be written in SQL: `unique` is a reserved word.
            "view": [sql.quote_identifier(v.name) if v.name in reserved else v.name for v in views],
            "rows": [con.view(v.name).count("*").fetchall()[0][0] for v in views],
            "file": [", ".join(p.name for p in v.paths) for v in views],
        }
    )
    with pl.Config(tbl_rows=len(views), fmt_str_lengths=80, tbl_hide_dataframe_shape=True):
        print(table)
