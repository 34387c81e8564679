"""Run the statements in `sql/*.sql` on DuckDB with bounded memory.

Each file holds one statement named after what it produces. Statements read
their inputs from views (`input_rows`, ...) that `open_input` creates over the
step's Parquet or JSONL files; values and paths are always bound as `$name`
parameters, never pasted into SQL text. Two places have no binding and quote
through `quote_literal` instead: the script `kbpipe query --init-script`
writes for the interactive `duckdb` CLI, and the output path of
`sql_output`'s COPY, which runs through the relation API.

Connections get a memory limit and a spill folder in the run's scratch folder
beside the output, so a multi-GB table is joined out of core instead of in RAM.
Results are written to files by `kbpipe.io.sql_output`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from kbpipe.errors import (
    ConfigError,
    InputError,
    OutputError,
    describe,
    is_interrupt,
    is_write_failure,
)
from kbpipe.io.scratch import active_output
from kbpipe.io.tables import (
    MAX_NESTING,
    _first_line,
    first_bad_jsonl_line,
    scratch_dir,
    table_format,
)

# The repo's sql/ (editable install) wins over the copy the wheel ships.
_SQL_DIRS = (
    Path(__file__).resolve().parents[2] / "sql",
    Path(__file__).resolve().parents[1] / "sql_files",
)

# DuckDB's buffer pool, not the whole process: Python and Arrow batches come
# on top. Near its limit DuckDB evicts and reallocates buffers over and over
# (page faults), so the limit leaves room above the benchmark tables' working set.
MEMORY_LIMIT = "1GB"

# The column open_input adds: the row's position in the input, file by file.
INPUT_ROW = "input_row"
# How input_rows_from_parquet.sql numbers rows: file_index * stride + row in file.
# Bound into that SQL, and used by InputTable.first_input_row.
PARQUET_FILE_STRIDE = 2**32

# How many offending example_ids an error message lists before "and N more".
SHOW_IDS = 20

# Errors DuckDB raises for unreadable or malformed input files (as opposed to
# a mistake in our own SQL, which should surface as a traceback).
_INPUT_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.IOException)

_NUMERIC_TYPES = {
    "tinyint",
    "smallint",
    "integer",
    "bigint",
    "hugeint",
    "utinyint",
    "usmallint",
    "uinteger",
    "ubigint",
    "uhugeint",
    "float",
    "double",
    "decimal",
}


def sql_dir() -> Path:
    for folder in _SQL_DIRS:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"no SQL folder; looked in {', '.join(map(str, _SQL_DIRS))}")


@functools.cache
def _sql_files() -> dict[str, Path]:
    # Files sit in one folder per owning step (sql/<step>/<name>.sql) but are
    # called by name alone, so a name must be unique across the folders.
    files: dict[str, Path] = {}
    for path in sorted(sql_dir().glob("*/*.sql")):
        if path.stem in files:
            raise ConfigError(f"{path}: SQL name also used by {files[path.stem]}")
        files[path.stem] = path
    return files


@functools.cache
def load(name: str) -> str:
    """The text of `sql/<step>/<name>.sql`."""
    try:
        path = _sql_files()[name]
    except KeyError:
        raise ConfigError(f"no SQL file named {name}.sql under {sql_dir()}") from None
    return path.read_text(encoding="utf-8")


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def connect(
    spill_dir: Path | None = None, *, memory_limit: str = MEMORY_LIMIT, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that keeps insertion order and spills to `spill_dir` if given."""
    config: dict[str, Any] = {
        "memory_limit": memory_limit,
        "threads": threads or os.cpu_count() or 1,
        # Steps rely on scans and filters keeping input order (ties, --limit).
        "preserve_insertion_order": True,
    }
    if spill_dir is not None:
        config["temp_directory"] = str(spill_dir)
    con = duckdb.connect(config=config)
    con.execute("set enable_progress_bar = false")
    # Parquet writers leave NaN out of min/max statistics, and DuckDB would
    # otherwise prune on them: `isnan(reward)` came out false for a NaN reward.
    con.execute("set parquet_can_have_nan = true")
    return con


@contextlib.contextmanager
def session(near: Path, **options: Any) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose spill folder sits in the scratch folder beside `near`.

    Beside the output rather than in /tmp: spills are as large as the data and
    the output's disk is the one known to have room for it.
    """
    with scratch_dir(near, "duckdb-spill-") as spill:
        con = connect(spill, **options)
        try:
            yield con
        finally:
            con.close()


def define(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Run `sql/<name>.sql` for each name, in order: statements creating macros the others use."""
    for name in names:
        con.execute(load(name))


def run(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> duckdb.DuckDBPyRelation:
    """A lazy relation for `sql/<name>.sql` with its `$parameters` bound."""
    return con.sql(load(name), params=params or None)


def fetch_one(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> dict[str, Any]:
    """Run a one-row statement and return that row as a dict."""
    rel = run(con, name, **params)
    rows = rel.fetchall()
    if len(rows) != 1:
        raise AssertionError(f"sql/{name}.sql returned {len(rows)} rows, expected one")
    return dict(zip(rel.columns, rows[0], strict=True))


@contextlib.contextmanager
def reading(source: str | InputTable, paths: Sequence[Path] = ()) -> Iterator[None]:
    """Turn DuckDB's complaints about a malformed input into an InputError naming it.

    Given the InputTable (or the JSONL `paths`), a bad line is found and named
    by its own line number and example_id: DuckDB names the line where it
    noticed, often the next one. A full disk or an interrupt is not the
    input's fault and says so.
    """
    label = source if isinstance(source, str) else source.label
    paths = paths if isinstance(source, str) else source.paths
    try:
        yield
    except _INPUT_ERRORS as exc:
        if is_write_failure(exc):
            where = active_output() or "the output"
            raise OutputError(f"{where}: cannot write: {describe(exc)}") from exc
        if is_interrupt(exc):
            raise KeyboardInterrupt from exc
        found = first_bad_jsonl_line(paths)
        raise InputError(found or f"{label}: {_first_line(exc)}") from exc


@dataclass
class InputTable:
    """A view over a step's input files, with the input's column types."""

    view: str
    paths: list[Path]
    types: dict[str, duckdb.DuckDBPyType]
    n_rows: int
    con: duckdb.DuckDBPyConnection = field(repr=False)
    limit: int | None = None

    @property
    def label(self) -> str:
        return paths_label(self.paths)

    def first_input_row(self, file_number: int) -> int:
        """The input_row of the first row of `self.paths[file_number]` (of any later file if empty).

        input_rows_from_parquet.sql numbers rows file_index * 2**32 + the row
        in the file; input_rows_from_jsonl.sql counts on across files from 1.
        """
        if table_format(self.paths[0]) == "parquet":
            return file_number * PARQUET_FILE_STRIDE
        if file_number == 0:
            return 1
        earlier = [str(p) for p in self.paths[:file_number]]
        return fetch_one(self.con, "input_row_count", paths=earlier)["n_rows"] + 1

    @functools.cached_property
    def row_bytes(self) -> int:
        """Uncompressed size of an average row, to size sql_output.write_ordered's buckets."""
        if table_format(self.paths[0]) == "jsonl":
            return sum(p.stat().st_size for p in self.paths) // self.n_rows + 1
        footers = run(self.con, "parquet_footer", paths=[str(p) for p in self.paths]).fetchall()
        return sum(int(size or 0) for _, size in footers) // self.n_rows + 1

    def _type(self, column: str) -> duckdb.DuckDBPyType:
        if column not in self.types:
            raise InputError(
                f"{self.label}: missing column {column!r}; found {', '.join(self.types)}"
            )
        return self.types[column]

    def require(self, *columns: str) -> None:
        for column in columns:
            self._type(column)

    def require_number(self, column: str) -> None:
        kind = self._type(column)
        if kind.id not in _NUMERIC_TYPES:
            found = self.first_bad_jsonl_line(lambda row: _not_a_number(row, column))
            raise InputError(
                found or f"{self.label}: column {column!r} has type {kind}; expected a number"
            )

    def require_struct_field(self, column: str, field: str, *, string: bool = False) -> None:
        """`column` is a struct with `field`; with `string`, one holding text."""
        kind = self._type(column)
        children = dict(kind.children) if kind.id == "struct" else {}
        if field not in children:
            raise InputError(
                f"{self.label}: column {column!r} has type {kind}; expected a struct "
                f"with a {field!r} field"
            )
        # An all-null field has DuckDB's NULL type; a string one of any other rows is fine.
        if string and children[field].id not in ("varchar", "null"):
            raise InputError(
                f"{self.label}: {column}.{field} has type {children[field]}; expected a string"
            )

    def require_messages(self, column: str) -> None:
        """A list of {role, content, ...} structs, as chat messages are stored."""
        kind = self._type(column)
        item = dict(kind.children).get("child") if kind.id == "list" else None
        fields = dict(item.children) if item is not None and item.id == "struct" else {}
        if "role" not in fields or "content" not in fields:
            raise InputError(
                f"{self.label}: column {column!r} has type {kind}; expected a list of "
                "messages (structs with 'role' and 'content')"
            )

    def first_bad_jsonl_line(
        self, problem: Callable[[Any], str | None] | None = None
    ) -> str | None:
        return first_bad_jsonl_line(self.paths, problem)


def open_input(
    con: duckdb.DuckDBPyConnection,
    paths: Sequence[Path],
    *,
    view: str = "input_rows",
    limit: int | None = None,
) -> InputTable:
    """Create `view` over Parquet or JSONL files, numbered in input order by `input_row`.

    `limit` keeps only the first rows of the input (a step's --limit).
    Fails with an InputError naming the file when one is missing, is not what
    its extension says, or when the input has no rows at all.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input files")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    formats = {table_format(p) for p in paths}
    if len(formats) > 1:
        raise InputError(f"{paths[0]}: inputs mix Parquet and JSONL; convert them to one format")
    fmt = formats.pop()
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
        if fmt == "parquet":
            _check_parquet(con, p)
        elif p.stat().st_size == 0:
            raise InputError(f"{p}: empty file (no rows)")
    label = paths_label(paths)
    with reading(label, paths):
        names = [str(p) for p in paths]
        if fmt == "jsonl":
            rel = run(con, "input_rows_from_jsonl", paths=names)
        elif len(paths) == 1:
            rel = run(con, "input_rows_from_parquet_file", paths=names)
        else:
            rel = run(con, "input_rows_from_parquet", paths=names, file_stride=PARQUET_FILE_STRIDE)
        if limit is not None:
            # Not in the SQL: a limit clause, even `limit null`, stops filters
            # from being pushed into the Parquet scan.
            rel = rel.limit(limit)
        if rel.columns.count(INPUT_ROW) > 1:
            raise InputError(f"{label}: has a column named {INPUT_ROW!r}, which kbpipe reserves")
        rel.create_view(view, replace=True)
        [(n_rows,)] = rel.count("*").fetchall()
    types = {c: t for c, t in zip(rel.columns, rel.types, strict=True) if c != INPUT_ROW}
    if n_rows == 0:
        raise InputError(f"{label}: no rows (empty input)")
    return InputTable(view, paths, types, n_rows, con, limit)


def _check_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Fail with the path when a file is not Parquet, or nests too deep for DuckDB's
    reader (which fails fatally on it); reads only the footer."""
    try:
        [(column, depth)] = run(con, "parquet_nesting", paths=[str(path)]).fetchall()
    except _INPUT_ERRORS as exc:
        raise InputError(f"{path}: not a Parquet file ({_first_line(exc)})") from exc
    if depth is not None and depth > MAX_NESTING:
        raise InputError(
            f"{path}: column {column!r} nests {depth} levels deep; kbpipe reads at most "
            f"{MAX_NESTING} (rows nested that deep are rejected by kbpipe convert)"
        )


def _not_a_number(row: Any, column: str) -> str | None:
    value = row.get(column) if isinstance(row, dict) else None
    if value is None or type(value) in (int, float):
        return None
    return f"{column} is {json.dumps(value)[:40]}, not a number"


def paths_label(paths: Sequence[Path]) -> str:
    """How error messages name an input: the file, or the first file and a count."""
    more = f" (+{len(paths) - 1} more files)" if len(paths) > 1 else ""
    return f"{paths[0]}{more}"


def format_ids(ids: Sequence[Any], total: int | None = None) -> str:
    """The first SHOW_IDS ids, then how many more of `total` (default: all of `ids`)."""
    total = len(ids) if total is None else total
    shown = ", ".join(map(str, ids[:SHOW_IDS]))
    more = total - min(len(ids), SHOW_IDS)
    return shown + (f" and {more} more" if more > 0 else "")
