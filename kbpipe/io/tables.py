"""Reading and writing tables: Parquet and JSONL, atomic writes, schema checks.

Every output goes through `atomic_output`: data is written to a temp file in a
run's scratch folder beside the destination (`kbpipe.io.scratch`) and renamed
over the target only when complete, so a crash leaves the previous output or
none, never a half file, and its temp files are swept by the next run. Inside
a step's `output_run` the finished file waits instead, to be published with
the step's other outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kbpipe.errors import InputError, OutputError, first_line, mapped, redact
from kbpipe.io.scratch import RunFolder, covering

# polars and pyarrow are imported where they are used: the DuckDB steps touch
# neither on their main path, and importing both is a large share of a small step's start-up.
if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

# Rows per Parquet row group. Rollout rows carry ~60 KB of reasoning, so 512
# rows is ~30 MB per group: small enough that readers stay bounded in memory,
# large enough that compression and scans stay efficient.
ROW_GROUP_ROWS = 512

# How deep a row may nest (objects and lists within each other, the row itself
# counting one). Real rollouts nest under ten; past a few hundred, json and
# DuckDB's Parquet reader fail outright. Checked on input before anything recurses.
MAX_NESTING = 64


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deep parsed JSON `value` nests, level by level without recursion; stops
    counting past `limit`. Exact types, as json gives: this runs on every row."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level and depth <= limit:
        depth += 1
        below: list[Any] = []
        for item in level:
            values = item.values() if type(item) is dict else item
            below += [v for v in values if type(v) is dict or type(v) is list]
        level = below
    return depth


_CONTAINERS = (dict, list)


FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}


def table_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown table format {path.suffix!r}; use .parquet or .jsonl")
    return fmt


@contextlib.contextmanager
def atomic_output(dest: Path) -> Iterator[Path]:
    """Yield a temp path in a scratch folder beside `dest`; put it at `dest` only if the
    block succeeds (at once, or at the publish of the step's output_run covering it)."""
    dest = Path(dest)
    check_writable(dest)
    run = covering(dest)
    if run is not None:
        tmp = _shared_temp(run, dest)
        try:
            yield tmp
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        run.stage(tmp, dest)
        return
    with RunFolder(dest.parent) as own:
        tmp = _shared_temp(own, dest)
        yield tmp
        os.replace(tmp, dest)


def _shared_temp(run: RunFolder, dest: Path) -> Path:
    tmp = run.temp(dest.name)
    # mkstemp makes the file owner-only; outputs are shared data, so honour the umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


@contextlib.contextmanager
def scratch_dir(near: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder for a run's bulky scratch data (sort buckets, DuckDB spill, Hub
    staging), in the scratch folder beside `near`; removed with it."""
    run = covering(Path(near))
    if run is not None:
        folder = run.subdir(prefix)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    with RunFolder(Path(near).parent) as own:
        yield own.subdir(prefix)


def discard(dest: Path) -> None:
    """Remove a stale side file now, or at the publish of the output_run covering it."""
    run = covering(Path(dest))
    if run is not None:
        run.discard(Path(dest))
    else:
        Path(dest).unlink(missing_ok=True)


def check_writable(dest: Path) -> None:
    """Fail before any work (or paid request) when `dest` cannot be written."""
    dest = Path(dest)
    if dest.is_dir():
        raise OutputError(f"{dest}: is a folder; name a file ending in .parquet or .jsonl")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{dest.parent}: cannot create the output folder ({exc.strerror})"
        ) from None
    if not os.access(dest.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{dest.parent}: the output folder is not writable")


def write_table(table: pa.Table | pl.DataFrame, dest: Path) -> Path:
    """Write a whole table atomically as Parquet or JSONL, chosen by extension."""
    dest = Path(dest)
    fmt = table_format(dest)
    if hasattr(table, "to_arrow"):  # a polars DataFrame
        table = table.to_arrow()
    with atomic_output(dest) as tmp, BatchWriter(tmp, table.schema, fmt) as writer:
        writer.write(table)
    return dest


class BatchWriter:
    """The one writer of kbpipe's output tables: Parquet (zstd, ROW_GROUP_ROWS per
    group) or JSONL, chosen by the file's extension unless `fmt` is given.

    Used inside `atomic_output`. The Parquet schema is `schema`, or fixed by the
    first batch written; JSONL rows come from Arrow batches or, where a step
    must write the exact JSON text of its input rows, from `write_rows`.
    """

    def __init__(self, path: Path, schema: pa.Schema | None = None, fmt: str | None = None):
        self.path = Path(path)
        self.fmt = fmt or table_format(self.path)
        self.schema = schema
        self.rows = 0
        self._parquet: Any = None
        self._fh: Any = None
        if self.fmt == "jsonl":
            self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        elif schema is not None:
            self._open_parquet(schema)

    def _open_parquet(self, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self.schema = schema
        self._parquet = pq.ParquetWriter(self.path, schema, compression="zstd")

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        import pyarrow as pa

        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if self.fmt == "jsonl":
            if table.num_rows:
                import polars as pl

                pl.from_arrow(table).write_ndjson(self._fh)
        else:
            if self._parquet is None:
                self._open_parquet(table.schema)
            self._parquet.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """JSONL only: rows as JSON text, one per line, non-ASCII kept as is."""
        for row in rows:
            self._fh.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
            self.rows += 1

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_table(path: Path, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Read a local Parquet or JSONL table, with errors that name the file."""
    import polars as pl
    import pyarrow as pa

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            df = pl.read_parquet(path, columns=list(columns) if columns else None)
        else:
            df = pl.read_ndjson(path, infer_schema_length=None)
            if columns:
                require_columns(df.schema, columns, path)
                df = df.select(columns)
    except (pl.exceptions.ComputeError, OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable {fmt} file ({_first_line(exc)})") from exc
    except pl.exceptions.ColumnNotFoundError as exc:
        raise InputError(f"{path}: missing column ({_first_line(exc)})") from exc
    return df


def parquet_schema(path: Path) -> pa.Schema:
    """Schema of a Parquet file without reading its data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a Parquet file ({_first_line(exc)})") from exc


def require_columns(schema: Any, columns: Iterable[str], path: Path | str) -> None:
    """Fail with the file and the missing column names if any are absent."""
    # pyarrow's Schema.names is a list; a polars schema or a list iterates as names.
    names = set(schema.names if isinstance(getattr(schema, "names", None), list) else schema)
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(sorted(names))}"
        )


def first_bad_jsonl_line(
    paths: Sequence[Path], problem: Callable[[Any], str | None] | None = None
) -> str | None:
    """Where a JSONL input first goes wrong (not JSON, too deep, or `problem(row)`):
    `path line N (example_id X): what`. None for Parquet or when no line is bad.

    Read line by line in Python, so it is for error messages only.
    """
    if not paths or table_format(Path(paths[0])) != "jsonl":
        return None
    for path in paths:
        found = _first_bad_line(Path(path), problem)
        if found is not None:
            return found
    return None


def _first_bad_line(path: Path, problem: Callable[[Any], str | None] | None) -> str | None:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if raw.isspace():
                continue
            try:
                row = json.loads(raw)
            except RecursionError:
                row, what = None, f"nests deeper than {MAX_NESTING} levels"
            except json.JSONDecodeError as exc:  # its own "line 1 column N" would mislead
                where = f"{exc.msg.removesuffix(' at')} at character {exc.pos + 1}"
                row, what = None, f"not valid JSON ({where})"
            except ValueError as exc:
                row, what = None, f"not valid JSON ({exc})"
            else:
                deep = nesting_depth(row) > MAX_NESTING
                what = f"nests deeper than {MAX_NESTING} levels" if deep else None
                what = what or (problem(row) if problem else None)
            if what is not None:
                example_id = row.get("example_id") if isinstance(row, dict) else None
                if row is None and (seen := _EXAMPLE_ID.search(raw[:4096])):
                    example_id = int(seen.group(1))
                who = "" if example_id is None else f" (example_id {example_id})"
                return f"{path} line {lineno}{who}: {what}"
    return None


# The example_id of a line that is not JSON (cut short by a crash), if it shows.
_EXAMPLE_ID = re.compile(rb'"example_id"\s*:\s*(-?\d+)')


@contextlib.contextmanager
def reading_table(path: Path) -> Iterator[None]:
    """Raise library errors of the block as one InputError naming `path` (and for a
    JSONL file, the first bad line), or an OutputError for a full disk."""
    try:
        with mapped(reading=str(path)):
            yield
    except InputError:
        found = first_bad_jsonl_line([path]) if table_format(Path(path)) == "jsonl" else None
        if found is None:
            raise
        raise InputError(found) from None


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sidecar(output: Path, kind: str) -> Path:
    """Path of a file that sits beside an output: `<output>.stats.json`, `<stem>.rejects.jsonl`."""
    output = Path(output)
    if kind == "stats":
        return output.with_name(output.name + ".stats.json")
    if kind == "rejects":
        return output.with_name(output.stem + ".rejects.jsonl")
    raise ValueError(kind)


def read_stats(table: Path) -> dict[str, Any] | None:
    """The stats/lineage JSON beside `table`, or None when it has none."""
    path = sidecar(table, "stats")
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the table's stats ({exc})") from None


def write_json(data: Any, dest: Path) -> Path:
    with atomic_output(dest) as tmp:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        tmp.write_text(redact(text) + "\n", encoding="utf-8")
    return dest


def write_rejects(rows: Iterable[dict[str, Any]], dest: Path) -> int:
    """Write rejected rows (each with a `reason`) as JSONL; remove a stale file when none.

    Rows are streamed, so an iterator over a large result never sits in memory
    whole. Each line is redacted: a reason can quote a server that echoed the key.
    """
    n_rows = 0
    with atomic_output(dest) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(redact(json.dumps(row, ensure_ascii=False, default=str)) + "\n")
            n_rows += 1
    if not n_rows:
        discard(dest)  # no rejects: no file, not even a stale one
    return n_rows


_first_line = first_line  # the name kbpipe.io and kbpipe.commands import
