"""`kbpipe status`: what is built for this DATA_MODEL, with which settings, and what is stale.

It judges staleness as make does, with the same settings stamps
(kbpipe.commands.makevars): an output is stale when the settings that shape it
differ from the ones it was built with, or when a table it is built from is
newer. (make also rebuilds when kbpipe's code changes; status leaves that out.)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kbpipe.commands import makevars
from kbpipe.config import Settings
from kbpipe.hub.publish import unpublished_marker

EXAMPLES = """examples:
  kbpipe status
  kbpipe status --data-model glm4_7 --json
  make status REWARD_THRESHOLD=0.9          # what a change would rebuild"""


@dataclass(frozen=True)
class Output:
    name: str
    file: str
    upstream: tuple[str, ...] = ()


# In pipeline order; the names are the make targets (or their outputs' names).
OUTPUTS = (
    Output("evals", "evals_dataset.parquet"),
    Output("filtered", "filtered_dataset.parquet", ("evals",)),
    Output("audited", "audited_dataset.parquet", ("filtered",)),
    Output("synthetic", "synthetic_prompts.parquet"),
    Output("unique", "unique_dataset.parquet", ("filtered",)),
    Output("seqlen", "seqlen_filtered.json", ("filtered",)),
    Output("filtered_no_reasoning", "filtered_no_reasoning.parquet", ("filtered",)),
    Output("unique_no_reasoning", "unique_no_reasoning.parquet", ("unique",)),
    Output("decontaminated", "decontaminated_dataset.parquet", ("filtered",)),
    Output("verified", "verified_dataset.parquet", ("filtered",)),
)
# The report's page shows the tables of the run (not the no-reasoning copies).
OUTPUTS += (
    Output("report", "report.html", tuple(o.name for o in OUTPUTS if "reasoning" not in o.name)),
)
_STAMP_OF = {o: stamp for stamp, outs in makevars.STAMPED_OUTPUTS.items() for o in outs}


@dataclass
class Entry:
    name: str
    path: Path
    rows: int | None = None
    built: float | None = None
    settings: dict[str, str] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unpublished: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": self.name,
            "path": str(self.path),
            "built": self.built is not None,
            "rows": self.rows,
            "settings": self.settings,
            "stale": self.stale,
            "notes": self.notes,
            "unpublished": self.unpublished,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    values = makevars.resolve(settings, makevars.read_environment(args.env_file))
    entries = collect(settings, values)
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], indent=2))
        return 0
    print(f"{settings.model_dir} (DATA_MODEL={settings.data_model})")
    built = [e for e in entries if e.built is not None]
    if not built:
        print("  nothing built yet: `make all` (or `make demo`) builds it")
    for e in built:
        print(_line(e))
    missing = [e.name for e in entries if e.built is None and e.name in _WANTED]
    if missing:
        print(f"  not built: {', '.join(missing)}")
    partial = sorted(p.name for p in settings.run_dir.glob("limit-*") if p.is_dir())
    if partial and not settings.partial_rows:
        print(f"  partial runs (TEST_MODE/--limit) beside it: {', '.join(partial)}")
    if any(e.unpublished for e in entries):
        print("  upload failed for the tables marked 'not published': `make publish` retries it")
    return 0


# What `make all` builds: listed as missing when absent (the extras only when present).
_WANTED = ("filtered", "synthetic", "unique", "seqlen")


def collect(settings: Settings, values: dict[str, str]) -> list[Entry]:
    wanted = makevars.stamp_variables(values)
    folder = makevars.stamp_dir(settings)
    entries: dict[str, Entry] = {}
    for out in OUTPUTS:
        entry = Entry(out.name, settings.model_dir / out.file)
        entries[out.name] = entry
        if not entry.path.is_file():
            continue
        entry.built = entry.path.stat().st_mtime
        entry.rows = _rows(entry.path)
        stamp = _STAMP_OF.get(out.name)
        if stamp is not None:
            names = wanted.get(stamp, ())
            _check_settings(entry, folder / f"{out.name}.built", {n: values[n] for n in names})
        ups = [entries[name] for name in out.upstream if entries[name].built is not None]
        newer = [up.name for up in ups if up.built > entry.built]
        if newer:
            entry.stale.append("rebuilt after it: " + ", ".join(newer))
        entry.stale += [f"made from {up.name}, which is stale" for up in ups if up.stale]
        marker = unpublished_marker(entry.path)
        if marker.is_file():
            entry.unpublished = json.loads(marker.read_text(encoding="utf-8")).get("repo_id")
    return list(entries.values())


def _check_settings(entry: Entry, built: Path, now: dict[str, str]) -> None:
    """The settings it was built with (make's copy of its stamp then) against now."""
    assert entry.built is not None
    if not built.is_file():
        entry.notes.append("built outside make: its settings are in its stats file")
        return
    entry.settings = makevars.parse_stamp(built.read_text(encoding="utf-8"))
    # make copies the stamp right after the step; a much later table was rebuilt by hand.
    if entry.built > built.stat().st_mtime + 60:
        entry.notes.append("rebuilt outside make after this")
    changed = [
        f"{k} {_shown(entry.settings, k)} -> {v or '(empty)'}"
        for k, v in now.items()
        if entry.settings.get(k, "") != v
    ]
    if changed:
        entry.stale.append("settings changed: " + ", ".join(changed))


def _shown(settings: dict[str, str], name: str) -> str:
    if name not in settings:
        return "(not used)"
    return settings[name] or "(empty)"


def _rows(path: Path) -> int | None:
    """Rows of a table or seqlen report; None for what cannot be read (a half-copied file)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if path.suffix == ".json":
            report = json.loads(path.read_text(encoding="utf-8"))
            return report.get("rows") if isinstance(report, dict) else None
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return None
    return None


def _line(e: Entry) -> str:
    rows = f"{e.rows:>8,} rows" if e.rows is not None else " " * 13
    when = datetime.fromtimestamp(e.built or 0).strftime("%Y-%m-%d %H:%M")
    shown = " ".join(f"{k}={v}" for k, v in e.settings.items() if v)
    state = "STALE: " + "; ".join(e.stale) if e.stale else "up to date"
    state += "".join(f"; {note}" for note in e.notes)
    if e.unpublished:
        state += f"; not published ({e.unpublished})"
    return f"  {e.name:<22} {rows}  {when}  {state}" + (
        f"\n  {'':<22} built with {shown}" if shown else ""
    )
