"""Inputs for verify's GPU checks and benchmark, built with pyarrow only.

The GPU machine has no polars or duckdb, so everything here goes through the
sample generator's JSONL writer and pyarrow:

    python -m bench.verify_data sample OUT.parquet [--rows N]   the bundled sample's rollouts
    python -m bench.verify_data broken OUT.parquet              hand-made broken candidates
    python -m bench.verify_data repeat IN.parquet OUT.parquet --rows N
    python -m bench.verify_data check VERIFIED.parquet          verdicts against `expect`

Broken candidates come from tests/verify/data/broken/*.txt, each naming its
sample module and the verdict it must get (`# expect: reason|other` or
`verified`); the row carries that as its `expect` column.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.sample.generator import MODULES, write_rollouts_jsonl
from kbpipe.verify.extract import extract_solution
from kbpipe.verify.table import reason_code

ROOT = Path(__file__).resolve().parent.parent
BROKEN_DIR = ROOT / "tests" / "verify" / "data" / "broken"
BROKEN_ID_BASE = 1_000_000


def sample_rows(n_rows: int = 240, seed: int = 0) -> list[dict[str, Any]]:
    """The bundled sample's rollouts (no reasoning text, no trajectory: verify needs neither)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rollouts.jsonl"
        write_rollouts_jsonl(path, n_rows=n_rows, reasoning_bytes=0, seed=seed)
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row.pop("trajectory", None)
    return rows


def one_per_module(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["info"]["module_name"], row)
    return list(first.values())


def broken_rows(folder: Path = BROKEN_DIR) -> list[dict[str, Any]]:
    modules = {m.name: m for m in MODULES}
    rows = []
    for i, path in enumerate(sorted(folder.glob("*.txt"))):
        text = path.read_text(encoding="utf-8")
        module_line, expect_line = text.splitlines()[:2]
        module = modules[module_line.removeprefix("# module:").strip()]
        rows.append(
            {
                "example_id": BROKEN_ID_BASE + i,
                "prompt": [{"role": "user", "content": f"Rewrite {module.name} with Triton."}],
                "completion": [{"role": "assistant", "content": f"<answer>\n{text}</answer>"}],
                "info": {"module_name": module.name, "python_code": module.python_code},
                "case": path.stem,
                "expect": expect_line.removeprefix("# expect:").strip(),
            }
        )
    return rows


def repeated(rows: list[dict[str, Any]], n_rows: int) -> list[dict[str, Any]]:
    """`n_rows` rows cycling through `rows`, each solution made textually unique.

    A trailing comment changes no kernel, but makes each row a distinct job, so
    the benchmark measures one run per row rather than the run-once cache.
    """
    solved = [(r, s.code) for r in rows if (s := extract_solution(r["completion"])) is not None]
    out = []
    for i in range(n_rows):
        source, code = solved[i % len(solved)]
        row = dict(source)
        content = f"<answer>\n{code.rstrip()}\n# copy {i}\n</answer>"
        row["completion"] = [{"role": "assistant", "content": content}]
        row["example_id"] = i
        out.append(row)
    return out


def write(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def check(path: Path) -> int:
    """Print each row that has an `expect` with its verdict; 1 if any differs."""
    table = pq.read_table(path, columns=["case", "expect", "verified", "verify_error"])
    wrong = 0
    for row in table.to_pylist():
        got = "verified" if row["verified"] else reason_code(row["verify_error"])
        ok = got in row["expect"].split("|")
        wrong += not ok
        print(f"{'ok ' if ok else 'BAD'} {row['case']:24s} expect {row['expect']:28s} got {got}"
              f"  ({row['verify_error']})")  # fmt: skip
    print(f"{table.num_rows - wrong} of {table.num_rows} broken candidates got their verdict")
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_data")
    parser.add_argument("what", choices=["sample", "broken", "repeat", "check"])
    parser.add_argument("paths", type=Path, nargs="+")
    parser.add_argument("--rows", type=int, default=240)
    args = parser.parse_args(argv)
    if args.what == "sample":
        write(sample_rows(args.rows), args.paths[0])
    elif args.what == "broken":
        write(broken_rows(), args.paths[0])
    elif args.what == "repeat":
        rows = pq.read_table(args.paths[0]).to_pylist()
        write(repeated(rows, args.rows), args.paths[1])
    else:
        return check(args.paths[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
