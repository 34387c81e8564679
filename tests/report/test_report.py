"""The report page and card images, built from hand-made run folders."""

from __future__ import annotations

import builtins
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from kbpipe.cli import main
from kbpipe.errors import ConfigError
from kbpipe.hub.splits import legacy_split_indices, module_in_validation
from kbpipe.report import ReportResult, build_report, card_images
from kbpipe.report.collect import assign_splits, collect
from tests.report.run_folder import write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALL_CHARTS = {
    "funnel",
    "rewards",
    "difficulty",
    "reward_by_difficulty",
    "modules",
    "seqlen_filtered",
    "verify",
    "speedup",
    "overlap",
    "audit",
}


def _charts(html: str) -> list[str]:
    return re.findall(r'data-chart="([^"]+)"', html)


def test_full_run_has_every_chart_and_no_external_reference(full_report: ReportResult):
    result = full_report
    html = result.path.read_text()
    assert set(_charts(html)) == ALL_CHARTS
    assert result.n_charts == len(ALL_CHARTS)
    assert result.notes == []
    # Self-contained: no scripts, stylesheets or images fetched from anywhere.
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    for figure in ("rollouts", "kept", "mean reward", "verified", "contaminated", "audit clean"):
        assert figure in html


def test_funnel_rows_come_from_every_stats_file(full_report: ReportResult):
    html = full_report.path.read_text()
    for step in ("convert", "filter", "dedupe", "seqlen", "prompts", "verify", "audit"):
        assert f"<div>{step}</div>" in html
    assert "reward_at_or_below_threshold" in html and "duplicate_module" in html


def test_rows_a_step_lost_without_a_reason_are_shown_as_unaccounted(run_dir: Path, tmp_path):
    stats = run_dir / "unique_dataset.parquet.stats.json"
    entry = json.loads(stats.read_text())
    entry["dropped"] = {}
    stats.write_text(json.dumps(entry))
    html = build_report(run_dir, tmp_path / "r.html").path.read_text()
    lost = entry["rows_in"] - entry["rows_out"]
    assert f"{lost:,} unaccounted" in html


def test_module_names_are_escaped(full_report: ReportResult):
    html = full_report.path.read_text()
    assert "&lt;script&gt;Bad&lt;/script&gt;" in html
    assert "<script>Bad" not in html


def test_missing_tables_are_noted_not_fatal(tmp_path: Path):
    run = write_run(tmp_path / "outputs" / "half", checks=False)
    for name in ("evals_dataset.parquet", "seqlen_filtered.json", "seqlen_filtered.parquet"):
        (run / name).unlink()
    result = build_report(run, tmp_path / "r.html")
    html = result.path.read_text()
    for name in ("verified", "decontaminated", "audited"):
        assert f"Not built yet: {name}_dataset.parquet" in html
    assert "Not built yet: evals_dataset.parquet" in html
    assert "Not built yet: seqlen_*.json" in html
    assert {"rewards", "difficulty", "funnel"} <= set(_charts(html))
    assert "verify" not in _charts(html)


def test_an_empty_folder_still_gives_a_page(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = build_report(tmp_path / "empty", tmp_path / "r.html")
    assert result.n_charts == 0
    assert "no step has finished here yet" in result.path.read_text()


def test_a_damaged_table_is_a_note(run_dir: Path, tmp_path: Path):
    (run_dir / "verified_dataset.parquet").write_bytes(b"PAR1 not really")
    result = build_report(run_dir, tmp_path / "r.html")
    assert any("verified_dataset.parquet: could not be read" in n for n in result.notes)
    assert "verify" not in _charts(result.path.read_text())


def test_a_check_table_without_some_columns_says_which(run_dir: Path, tmp_path: Path):
    import pyarrow.parquet as pq

    path = run_dir / "verified_dataset.parquet"
    pq.write_table(pq.read_table(path).drop(["speedup_measured", "speedup_reward"]), path)
    result = build_report(run_dir, tmp_path / "r.html")
    html = result.path.read_text()
    assert "has no column speedup_measured, speedup_reward" in html
    assert "verify" in _charts(html) and "speedup" not in _charts(html)


def test_a_partial_seqlen_report_is_called_out(run_dir: Path, tmp_path: Path):
    path = run_dir / "seqlen_filtered.json"
    report = json.loads(path.read_text())
    report["rows"] = 5
    path.write_text(json.dumps(report))
    html = build_report(run_dir, tmp_path / "r.html").path.read_text()
    assert "counts 5 of the" in html and "--limit" in html


def test_splits_match_publishing():
    modules = [f"M{i}" for i in range(200)]
    module_split = assign_splits(modules, 200, "module")
    assert [s == "validation" for s in module_split] == [module_in_validation(m) for m in modules]
    legacy = assign_splits(modules, 200, "legacy")
    assert sorted(np.nonzero(legacy == "validation")[0]) == sorted(legacy_split_indices(200)[1])
    assert set(assign_splits(modules, 200, "none")) == {"train"}


def test_seqlen_rows_get_a_split(run_dir: Path):
    [item] = collect(run_dir).seqlen
    assert item.n_tokens is not None and len(item.n_tokens) == len(item.splits)


def test_card_images_for_a_table(run_dir: Path, tmp_path: Path):
    images = card_images(run_dir, tmp_path / "images", table="filtered")
    names = [i.path.name for i in images]
    assert names == [
        "funnel.png",
        "rewards.png",
        "difficulty.png",
        "reward_by_difficulty.png",
        "seqlen_filtered.png",
    ]
    for image in images:
        assert image.path.read_bytes().startswith(PNG_MAGIC)
        assert image.title and image.alt
    with pytest.raises(ConfigError, match="no card charts for table 'nope'"):
        card_images(run_dir, tmp_path / "x", table="nope")


def test_without_matplotlib_the_error_is_one_line(run_dir, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    for name in [m for m in sys.modules if m.startswith(("matplotlib", "kbpipe.report."))]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ConfigError, match=r"pip install 'kbpipe\[plot\]'") as err:
        build_report(run_dir, tmp_path / "r.html")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r.html").exists()


def test_cli_writes_the_default_path(run_dir: Path, capsys):
    output_dir = run_dir.parent
    code = main(["report", "--output-dir", str(output_dir), "--data-model", run_dir.name])
    assert code == 0
    assert (run_dir / "report.html").exists()
    out = capsys.readouterr().out
    assert "report: 10 charts" in out and f"wrote {run_dir / 'report.html'}" in out


def test_cli_names_a_missing_run_folder(tmp_path: Path, capsys):
    code = main(["report", "--output-dir", str(tmp_path), "--data-model", "nothing_here"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("kbpipe report: error:") and "no such run folder" in err
    assert "\n" not in err
