"""merge: a base run and a synthetic-prompt run in one table with data_source."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io.tables import sidecar
from kbpipe.steps.merge import merge


def test_base_rows_then_synthetic_rows_with_data_source(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    base = to_parquet([evals_row(i, difficulty="low") for i in (3, 1, 2)], tmp_path / "b.parquet")
    synthetic = to_parquet([evals_row(i, split="train") for i in (9, 0)], tmp_path / "s.parquet")
    out = tmp_path / "merged.parquet"

    result = merge(base, synthetic, out, settings)

    table = pq.read_table(out)
    assert table.column_names[-1] == "data_source"
    got = table.select(["example_id", "data_source", "difficulty", "split"]).to_pylist()
    assert got == [
        {"example_id": 3, "data_source": "base", "difficulty": "low", "split": None},
        {"example_id": 1, "data_source": "base", "difficulty": "low", "split": None},
        {"example_id": 2, "data_source": "base", "difficulty": "low", "split": None},
        {"example_id": 9, "data_source": "synthetic", "difficulty": None, "split": "train"},
        {"example_id": 0, "data_source": "synthetic", "difficulty": None, "split": "train"},
    ]
    assert table.to_pylist()[0]["completion"] == evals_row(3)["completion"]
    assert (result.rows_in, result.rows_out, result.dropped) == (5, 5, {})
    assert result.metrics == {"n_base": 3, "n_synthetic": 2}
    assert [entry["run"] for entry in result.inputs] == ["base", "synthetic"]


def test_cli_reads_both_run_folders_and_writes_to_the_base_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], evals_row, to_parquet, run_step
) -> None:
    outputs = tmp_path / "outputs"
    for folder, ids in (("m", [0, 1]), ("m-synthetic-prompts", [5])):
        (outputs / folder).mkdir(parents=True)
        to_parquet([evals_row(i) for i in ids], outputs / folder / "filtered_dataset.parquet")
    assert run_step("merge", "filtered", outputs=outputs) == 0

    assert "2 base + 1 synthetic = 3 rows" in capsys.readouterr().out
    dest = outputs / "m" / "filtered_merged.parquet"
    assert pq.read_table(dest)["data_source"].to_pylist() == ["base", "base", "synthetic"]
    stats = json.loads(sidecar(dest, "stats").read_text())
    assert [Path(e["path"]).parent.name for e in stats["inputs"]] == ["m", "m-synthetic-prompts"]


def _ids_and_sources(path: Path) -> list[tuple[int, str]]:
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        rows = pq.read_table(path, columns=["example_id", "data_source"]).to_pylist()
    return [(r["example_id"], r["data_source"]) for r in rows]


def test_limit_keeps_the_first_rows_of_each_run_across_its_files(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    # Each run comes as two files, as a pulled Hub repo with two shards would.
    base = [
        to_parquet([evals_row(i) for i in (1, 2)], tmp_path / "b0.parquet"),
        to_parquet([evals_row(i) for i in (3, 4)], tmp_path / "b1.parquet"),
    ]
    synthetic = [
        to_parquet([evals_row(7)], tmp_path / "s0.parquet"),
        to_parquet([evals_row(i) for i in (8, 9)], tmp_path / "s1.parquet"),
    ]
    out = tmp_path / "merged.parquet"

    result = merge(base, synthetic, out, settings, limit=3)

    assert _ids_and_sources(out) == [
        (1, "base"),
        (2, "base"),
        (3, "base"),
        (7, "synthetic"),
        (8, "synthetic"),
        (9, "synthetic"),
    ]
    assert result.metrics == {"n_base": 3, "n_synthetic": 3}
    assert (result.rows_in, result.rows_out) == (6, 6)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_the_same_table_as_both_runs_is_labelled_by_position(
    tmp_path: Path, settings: Settings, evals_row, to_parquet, suffix: str
) -> None:
    src = to_parquet([evals_row(i) for i in (5, 6)], tmp_path / "t.parquet")
    if suffix == ".jsonl":
        jsonl = tmp_path / "t.jsonl"
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in pq.read_table(src).to_pylist()))
        src = jsonl
    out = tmp_path / f"merged{suffix}"

    result = merge(src, src, out, settings, limit=1 if suffix == ".jsonl" else None)

    if suffix == ".jsonl":
        assert _ids_and_sources(out) == [(5, "base"), (5, "synthetic")]
    else:
        assert _ids_and_sources(out) == [
            (5, "base"),
            (6, "base"),
            (5, "synthetic"),
            (6, "synthetic"),
        ]
    assert result.rows_out == result.rows_in


def test_an_empty_run_is_an_error_and_writes_nothing(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    base = to_parquet([evals_row(1)], tmp_path / "b.parquet")
    empty = to_parquet([evals_row(2)], tmp_path / "s.parquet")
    pq.write_table(pq.read_table(empty).slice(0, 0), empty)
    out = tmp_path / "merged.parquet"

    with pytest.raises(InputError, match=f"{empty}: no rows .* synthetic run"):
        merge(base, empty, out, settings)
    assert not out.exists()


def test_runs_in_different_formats_are_an_error(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    base = to_parquet([evals_row(1)], tmp_path / "b.parquet")
    synthetic = tmp_path / "s.jsonl"
    synthetic.write_text(json.dumps(pq.read_table(base).to_pylist()[0]) + "\n")
    out = tmp_path / "merged.parquet"

    with pytest.raises(InputError, match="inputs mix Parquet and JSONL"):
        merge(base, synthetic, out, settings)
    assert not out.exists()
