"""A card's "Checks" section: what verify, audit and decontaminate found, from their stats.

A check's own table (verified, audited, decontaminated) shows its summary, and
so does a table the check looked at or shares an input with: the check's
`<table>.stats.json` beside the table names this very file as its input (the
filtered table), or names the file this table was made from (a unique table,
or another check's table, made from that filtered table). The figures are the
check's own, so the card says which rows they are about.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kbpipe.config import table_spec
from kbpipe.io.tables import file_sha256, sidecar
from kbpipe.verify.rules import FLAGS, INFORMATIONAL

# The check tables in the order their summaries appear, by the step that writes each.
_CHECK_STEPS = {"verify": "verified", "audit": "audited", "decontaminate": "decontaminated"}
# Benchmark problems listed before "and N more".
_TOP_MATCHES = 10


def checks_section(stats: dict[str, Any]) -> list[str]:
    """The card's "## Checks" lines for the table `stats` describes; none if no check applies."""
    found = []
    for step, table in _CHECK_STEPS.items():
        if stats.get("step") == step:
            found.append((step, stats, "this table's rows"))
        elif (check := _beside(stats, table)) is not None and (where := _rows_of(check, stats)):
            found.append((step, check, where))
    if not found:
        return []
    lines = ["## Checks", ""]
    for step, check, where in found:
        lines += _RENDER[step](check, where)
    return lines


def _figures(stats: dict[str, Any]) -> dict[str, Any]:
    return stats.get("metrics") or stats


def _beside(stats: dict[str, Any], table: str) -> dict[str, Any] | None:
    """The stats of check table `table` in the folder of the table `stats` describes."""
    if not stats.get("output"):
        return None
    path = sidecar(
        Path(str(stats["output"])).with_name(f"{table_spec(table).stem}.parquet"), "stats"
    )
    try:
        check = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no such check here, or a torn file: the card goes without it
    return check if isinstance(check, dict) and check.get("step") in _CHECK_STEPS else None


def _rows_of(check: dict[str, Any], stats: dict[str, Any]) -> str | None:
    """Which rows the check ran on, in the card's words, when they concern this table."""
    checked = [e for e in check.get("inputs") or [] if isinstance(e, dict)]
    if any(_is_this_file(entry, Path(str(stats["output"]))) for entry in checked):
        return "this table's rows"
    for parent in stats.get("inputs") or []:
        if isinstance(parent, dict) and any(_same_input(e, parent) for e in checked):
            name = Path(str(parent.get("path"))).name
            return f"the rows of `{name}`, which this table was made from"
    return None


def _is_this_file(entry: dict[str, Any], table: Path) -> bool:
    # The same path is not enough: the table may have been rebuilt since the check ran.
    if not table.is_file() or Path(str(entry.get("path"))).resolve() != table.resolve():
        return False
    stat = table.stat()
    if entry.get("bytes") not in (None, stat.st_size):
        return False
    return entry.get("sha256") == _sha256(str(table.resolve()), stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, _mtime_ns: int) -> str:
    return file_sha256(Path(path))


def _same_input(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"]
    if a.get("revision") and b.get("revision"):  # the same Hub dataset at one revision
        return (a.get("path"), a["revision"]) == (b.get("path"), b["revision"])
    return False


def _ran_on(check: dict[str, Any], where: str) -> str:
    limit = (check.get("params") or {}).get("limit")
    first = f" (the first {limit:,} only)" if limit else ""
    return f"Run on {where}{first}"


def _table(header: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> list[str]:
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else "–"


def _g(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "?"


def _verify_lines(check: dict[str, Any], where: str) -> list[str]:
    m = _figures(check)
    rows, n_ok = int(check.get("rows_in") or 0), int(m.get("n_verified") or 0)
    gpus = ", ".join(m.get("gpu_names") or []) or "no GPU recorded"
    seeds = ", ".join(map(str, m.get("seeds") or []))
    lines = [
        "### Verification on a GPU (`kbpipe verify`)",
        "",
        f"{_ran_on(check, where)}: each solution re-run against its PyTorch reference on "
        f"{gpus}, within atol {_g(m.get('atol'))} and rtol {_g(m.get('rtol'))} at every input "
        f"seed of {seeds}.",
        "",
        *_table(
            ["rows", "verified", "pass rate"],
            [[f"{rows:,}", f"{n_ok:,}", _share(n_ok, rows)]],
            numeric=(0, 1, 2),
        ),
    ]
    failures = sorted((m.get("failed_by_reason") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    if failures:
        rows_by_reason = [[f"`{reason}`", f"{n:,}"] for reason, n in failures]
        lines += _table(["failed because", "rows"], rows_by_reason, numeric=(1,))
    quantiles = m.get("speedup_quantiles") or {}
    if quantiles:
        lines += ["Measured speed-up over the PyTorch reference, verified rows:", ""]
        cells = [f"{v:.2f}x" if isinstance(v, int | float) else "?" for v in quantiles.values()]
        lines += _table(list(quantiles), [cells], numeric=tuple(range(len(cells))))
    return lines


def _audit_lines(check: dict[str, Any], where: str) -> list[str]:
    m = _figures(check)
    rows, n_ok = int(check.get("rows_in") or 0), int(m.get("n_ok") or 0)
    fate = (
        "moved to the rejects file (`--drop-flagged`)"
        if (check.get("params") or {}).get("drop_flagged")
        else "kept, marked by `audit_ok` and `audit_flags`"
    )
    lines = [
        "### Static audit (`kbpipe audit`)",
        "",
        f"{_ran_on(check, where)}: {n_ok:,} of {rows:,} solutions ({_share(n_ok, rows)}) pass "
        f"a reading of their code for reward hacks; the {int(m.get('n_flagged') or 0):,} that "
        f"fail are {fate}.",
        "",
    ]
    flags = m.get("flags") or {}
    if flags:
        table = [
            [f"`{flag}`", f"{n:,}", "no" if flag in INFORMATIONAL else "yes", FLAGS.get(flag, "")]
            for flag, n in flags.items()
        ]
        lines += _table(["flag", "rows", "fails the audit", "meaning"], table, numeric=(1,))
    return lines


def _decontaminate_lines(check: dict[str, Any], where: str) -> list[str]:
    m, params = _figures(check), check.get("params") or {}
    rows, n = int(check.get("rows_in") or 0), int(m.get("n_contaminated_rows") or 0)
    fate = "dropped (`--drop`)" if params.get("drop") else "kept, marked by `contaminated`"
    lines = [
        "### Decontamination against KernelBench (`kbpipe decontaminate`)",
        "",
        f"{_ran_on(check, where)}: {n:,} of {rows:,} rows ({_share(n, rows)}), from "
        f"{int(m.get('n_contaminated_modules') or 0):,} modules, match one of "
        f"{int(m.get('n_problems') or 0):,} benchmark problems (an overlap of "
        f"{params.get('ngram', '?')}-grams of the normalised code of at least "
        f"{_g(params.get('threshold'))}; {int(m.get('n_exact_modules') or 0):,} modules "
        f"exactly); they are {fate}.",
        "",
    ]
    matches = [x for x in m.get("matched_problems") or [] if isinstance(x, dict)]
    if matches:
        table = [
            [f"`{x.get('benchmark_match')}`", f"{x.get('n_rows', 0):,}",
             f"{x.get('n_modules', 0):,}", _g(x.get("max_overlap"))]
            for x in matches[:_TOP_MATCHES]
        ]  # fmt: skip
        header = ["benchmark problem", "rows", "modules", "max overlap"]
        lines += _table(header, table, numeric=(1, 2, 3))
        if len(matches) > _TOP_MATCHES:
            lines += [f"… and {len(matches) - _TOP_MATCHES} more problems.", ""]
    return lines


_RENDER: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "verify": _verify_lines,
    "audit": _audit_lines,
    "decontaminate": _decontaminate_lines,
}
