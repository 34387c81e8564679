"""Step 4, seqlen: exact counts with a tiny tokenizer, the report, --drop-over, the CLI.

With the tiny tokenizer and Qwen3-style template of tests/test_chat.py, a row
whose user turn is "tile tile", whose answer is "kernel" and whose reasoning is
W words renders to exactly 19 + W tokens, W of them from the reasoning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from kbpipe.cli import main
from kbpipe.config import Settings
from kbpipe.errors import ConfigError, InputError
from kbpipe.steps.seqlen import seqlen
from kbpipe.tokens.chat import ChatTokenizer
from kbpipe.tokens.length_report import recommend_seq_len, summarize
from kbpipe.tokens.loading import load_chat_tokenizer
from tests.test_chat import QWEN3_DIR, needs_qwen3, write_tiny_tokenizer

BASE = 19  # tokens of a row with empty reasoning (see the module docstring)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tiny")


@pytest.fixture(scope="module")
def tiny(tok_dir: Path) -> ChatTokenizer:
    return load_chat_tokenizer(tok_dir)


def row(example_id: int, words: int | None, **extra: Any) -> dict[str, Any]:
    """An evals row whose reasoning is `words` words (None: no reasoning at all)."""
    reasoning = None if words is None else " ".join(["tile"] * words)
    return {
        "example_id": example_id,
        "prompt": [{"role": "user", "content": "tile tile"}],
        "completion": [{"role": "assistant", "content": "kernel", "reasoning": reasoning}],
        "reward": 0.9,
        "info": {"module_name": f"Mod{example_id}", "python_code": "class M: ..."},
        **extra,
    }


def write(rows: list[dict[str, Any]], path: Path) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        # from_pylist takes its columns from the first row; give every row every key.
        keys = list(dict.fromkeys(k for r in rows for k in r))
        pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows]), path)
    return path


def per_row(settings: Settings, which: str = "filtered") -> list[dict[str, Any]]:
    return pq.read_table(settings.seqlen_rows_path(which)).to_pylist()


def report(settings: Settings, which: str = "filtered") -> dict[str, Any]:
    return json.loads(settings.seqlen_json_path(which).read_text())


# -- counting ----------------------------------------------------------------------------


def test_per_row_lengths_are_exact(tmp_path: Path, settings: Settings, tiny: ChatTokenizer) -> None:
    table = write([row(0, None), row(1, 3), row(2, 10), row(3, 50)], tmp_path / "t.parquet")
    result = seqlen([table], settings, tokenizer=tiny, batch_rows=3)
    assert per_row(settings) == [
        {"example_id": i, "module_name": f"Mod{i}", "n_tokens": BASE + w, "n_reasoning_tokens": w}
        for i, w in enumerate([0, 3, 10, 50])
    ]
    assert (result.rows_in, result.rows_out, result.dropped) == (4, 4, {})
    assert result.metrics["total_tokens"] == 4 * BASE + 63
    stats = json.loads(
        settings.seqlen_rows_path("filtered").with_suffix(".parquet.stats.json").read_text()
    )
    assert stats["params"]["reasoning"] == "include"
    assert stats["inputs"][0]["sha256"]


def test_reasoning_drop_counts_without_it(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    table = write([row(0, 3), row(1, 10)], tmp_path / "t.parquet")
    seqlen([table], settings, tokenizer=tiny, reasoning="drop")
    assert [(r["n_tokens"], r["n_reasoning_tokens"]) for r in per_row(settings)] == [(BASE, 0)] * 2
    assert report(settings)["reasoning"] == "drop"


def test_inline_think_tags_count_as_reasoning(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    inline = row(0, None)
    inline["completion"][0]["content"] = "<think>\ntile tile tile tile\n</think>\n\nkernel"
    seqlen([write([inline], tmp_path / "t.parquet")], settings, tokenizer=tiny)
    assert per_row(settings)[0] | {"module_name": None} == {
        "example_id": 0,
        "module_name": None,
        "n_tokens": BASE + 4,
        "n_reasoning_tokens": 4,
    }


def test_jsonl_input_counts_like_parquet(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    # Only the last row has a difficulty: the earlier batches must not lose their rows' group.
    rows = [row(i, i * 2) for i in range(4)] + [row(4, 8, difficulty="low")]
    seqlen([write(rows, tmp_path / "t.jsonl")], settings, tokenizer=tiny, batch_rows=2)
    from_jsonl, groups = per_row(settings), report(settings)["by_difficulty"]
    assert {k: v["rows"] for k, v in groups.items()} == {"(none)": 4, "low": 1}
    seqlen([write(rows, tmp_path / "t.parquet")], settings, tokenizer=tiny)
    assert from_jsonl == per_row(settings)
    assert report(settings)["by_difficulty"] == groups
    assert [r["n_tokens"] for r in from_jsonl] == [BASE + 2 * i for i in range(5)]


def test_limit_counts_the_first_rows(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    table = write([row(i, i) for i in range(10)], tmp_path / "t.parquet")
    result = seqlen([table], settings, tokenizer=tiny, limit=3, batch_rows=2)
    assert [r["example_id"] for r in per_row(settings)] == [0, 1, 2]
    assert result.rows_in == 3


def _refused_rows() -> list[dict[str, Any]]:
    bad = row(41, 2)
    bad["prompt"] = [{"role": "assistant", "content": "tile"}]  # the template raises
    null = row(42, 2)
    null["completion"][0]["content"] = None  # 'dict object' has no attribute 'content'
    return [row(40, 1), bad, null, row(43, 3)]


def test_rows_the_template_refuses_are_rejects_and_the_step_goes_on(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    table = write(_refused_rows(), tmp_path / "t.parquet")
    result = seqlen([table], settings, tokenizer=tiny, batch_rows=3)
    assert (result.rows_in, result.rows_out) == (4, 2)
    assert result.dropped == {"template_error": 2}
    assert [r["example_id"] for r in per_row(settings)] == [40, 43]
    rejects = [json.loads(x) for x in result.rejects.read_text().splitlines()]
    assert [(r["example_id"], r["reason"]) for r in rejects] == [
        (41, "template_error"),
        (42, "template_error"),
    ]
    assert "example_id 41: chat template failed" in rejects[0]["detail"]
    report = json.loads(settings.seqlen_json_path("filtered").read_text())
    assert (report["rows"], report["rows_skipped"]) == (2, 2)


def test_drop_over_leaves_refused_rows_out_of_the_table(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write(_refused_rows(), tmp_path / "t.parquet")
    out = tmp_path / "short.parquet"
    result = seqlen([table], settings, tokenizer=tiny, drop_over=BASE + 1, output=out)
    assert pq.read_table(out)["example_id"].to_pylist() == [40]
    assert result.dropped == {"template_error": 2, "over_seq_len": 1}
    rejects = [json.loads(x) for x in result.rejects.read_text().splitlines()]
    assert [r["example_id"] for r in rejects] == [41, 42, 43]


def test_a_prompt_that_is_not_messages_is_an_error(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    table = write([row(0, 1), {**row(1, 1), "prompt": "tile"}], tmp_path / "t.jsonl")
    with pytest.raises(InputError, match=r"t\.jsonl:2: example_id 1: prompt is not a list"):
        seqlen([table], settings, tokenizer=tiny)


def test_missing_columns_are_named(tmp_path: Path, settings: Settings, tiny: ChatTokenizer) -> None:
    table = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"example_id": [1], "prompt": [[{"role": "user", "content": "x"}]]}), table
    )
    with pytest.raises(InputError, match="missing column.*completion"):
        seqlen([table], settings, tokenizer=tiny)


# -- the report ----------------------------------------------------------------------------


def test_report_has_the_seed_figures_and_groups(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    rows = [
        row(i, w, difficulty=d, split=s)
        for i, (w, d, s) in enumerate(
            [
                (0, "low", "train"),
                (5, "low", "train"),
                (100, "high", "train"),
                (2100, "high", "validation"),
            ]
        )
    ]
    seqlen([write(rows, tmp_path / "t.parquet")], settings, tokenizer=tiny)
    rep = report(settings)
    lengths = [BASE, BASE + 5, BASE + 100, BASE + 2100]
    assert (rep["rows"], rep["min"], rep["max"]) == (4, BASE, BASE + 2100)
    assert rep["total_tokens"] == sum(lengths)
    assert rep["median"] == np.median(lengths) and rep["mean"] == round(np.mean(lengths), 1)
    assert list(rep["percentiles"]) == ["50", "75", "90", "95", "99", "99.5", "99.9", "100"]
    assert rep["percentiles"]["75"] == round(float(np.percentile(lengths, 75)), 1)
    assert [b["count"] for b in rep["buckets"]] == [3, 0, 1, 0, 0, 0, 0, 0, 0]
    assert [b["cum_pct"] for b in rep["buckets"]][:3] == [75.0, 75.0, 100.0]
    assert rep["rows_over"] == {"2048": 1, "4096": 0, "8192": 0, "16384": 0, "32768": 0}
    assert rep["recommended_seq_len"] == {"99": 4096, "99.5": 4096, "100": 4096}
    assert rep["reasoning_tokens"]["total"] == 2205
    assert rep["reasoning_tokens"]["rows_without"] == 1
    assert {k: v["rows"] for k, v in rep["by_difficulty"].items()} == {"high": 2, "low": 2}
    assert {k: v["max"] for k, v in rep["by_split"].items()} == {
        "train": BASE + 100,
        "validation": BASE + 2100,
    }
    assert rep["by_split"]["train"]["recommended_seq_len"]["100"] == 1024
    assert rep["tokenizer"] == tiny.source


def test_no_group_sections_without_the_columns(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    seqlen([write([row(0, 1)], tmp_path / "t.parquet")], settings, tokenizer=tiny)
    assert "by_split" not in report(settings) and "by_difficulty" not in report(settings)


def test_an_empty_table_gives_an_empty_report(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    table = write([row(0, 1)], tmp_path / "t.parquet")
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(table).slice(0, 0), empty)
    seqlen([empty], settings, tokenizer=tiny)
    assert report(settings)["rows"] == 0 and per_row(settings) == []


def test_max_over_64k_is_not_reported_as_64k() -> None:
    out = summarize([1000, 70_000])
    assert out["max"] == 70_000
    assert out["recommended_seq_len"]["100"] == 131_072
    assert out["buckets"][-2] == {
        "label": "<=128k",
        "le": 131072,
        "count": 1,
        "pct": 50.0,
        "cum_pct": 100.0,
    }
    assert recommend_seq_len(300_000) == 524_288
    assert [recommend_seq_len(n) for n in (0, 1, 1024, 1025, 65_536)] == [
        1024,
        1024,
        1024,
        2048,
        65_536,
    ]


def test_coverage_uses_the_order_statistic() -> None:
    # Linear interpolation would put p99 of ten rows between the 9th and 10th
    # length and recommend 1k, leaving the 10th row (10 % of them) truncated.
    out = summarize([100] * 9 + [5000])
    assert out["recommended_seq_len"]["99"] == 8192
    assert out["coverage_pct_at_recommended"]["99"] == 100.0


@hyp_settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300_000), min_size=1, max_size=200))
def test_recommendations_cover_and_are_the_smallest_power_of_two(lengths: list[int]) -> None:
    out = summarize(lengths)
    arr = np.asarray(lengths)
    for cov, seq_len in out["recommended_seq_len"].items():
        assert seq_len >= 1024 and seq_len & (seq_len - 1) == 0
        assert (arr <= seq_len).mean() * 100 >= float(cov)
        if seq_len > 1024:
            assert (arr <= seq_len // 2).mean() * 100 < float(cov)
        assert out["rows_over_recommended"][cov] == int((arr > seq_len).sum())
    assert sum(b["count"] for b in out["buckets"]) == len(lengths)
    assert out["rows_over"]["2048"] == int((arr > 2048).sum())
    assert math.isclose(out["percentiles"]["50"], round(float(np.percentile(arr, 50)), 1))


def _seed_percentiles(lengths: list[int]) -> tuple[float, dict[str, float]]:
    """The seed's analyze_seq_length.py figures, as it computed them."""
    sorted_lengths = sorted(lengths)
    n = len(sorted_lengths)
    fractions = {"50": 0.5, "75": 0.75, "90": 0.9, "95": 0.95, "99": 0.99}
    fractions |= {"99.5": 0.995, "99.9": 0.999, "100": 1.0}
    return sorted_lengths[n // 2], {k: sorted_lengths[int(n * p) - 1] for k, p in fractions.items()}


@hyp_settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300_000), min_size=1, max_size=2000))
def test_percentiles_seed_are_the_seeds_order_statistics(lengths: list[int]) -> None:
    out = summarize(lengths, percentiles="seed")
    median, percentiles = _seed_percentiles(lengths)
    assert out["median"] == median and out["percentiles"] == percentiles
    assert out["percentile_method"] == "seed"


def test_percentiles_seed_differ_from_interpolation_where_the_seed_did() -> None:
    lengths = [100, 200, 300, 400]
    assert summarize(lengths)["median"] == 250.0
    assert summarize(lengths, percentiles="seed")["median"] == 300  # sorted[n // 2]
    assert summarize(lengths, percentiles="seed")["percentiles"]["50"] == 200  # sorted[1]
    with pytest.raises(ConfigError, match="--percentiles"):
        summarize(lengths, percentiles="nearest")


# -- acting on it ----------------------------------------------------------------------------


def test_drop_over_writes_the_short_rows_and_rejects_the_long(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    table = write([row(i, w) for i, w in enumerate([1, 30, 2, 100, 3])], tmp_path / "t.parquet")
    out = tmp_path / "short.parquet"
    result = seqlen([table], settings, tokenizer=tiny, drop_over=BASE + 3, output=out)
    kept = pq.read_table(out)
    assert kept.schema == pq.read_schema(table)
    assert kept.column("example_id").to_pylist() == [0, 2, 4]
    rejects = [json.loads(x) for x in (tmp_path / "short.rejects.jsonl").read_text().splitlines()]
    assert [(r["example_id"], r["reason"], r["n_tokens"]) for r in rejects] == [
        (1, "over_seq_len", BASE + 30),
        (3, "over_seq_len", BASE + 100),
    ]
    assert (result.rows_in, result.rows_out, result.dropped) == (5, 3, {"over_seq_len": 2})
    stats = json.loads((tmp_path / "short.parquet.stats.json").read_text())
    assert stats["dropped"] == {"over_seq_len": 2}
    assert report(settings)["drop_over"]["rows_kept"] == 3
    # The analysis still covers every row.
    assert len(per_row(settings)) == 5


def test_drop_over_on_jsonl_copies_lines_verbatim(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    table = write([row(i, w) for i, w in enumerate([1, 300, 2])], tmp_path / "t.jsonl")
    out = tmp_path / "short.jsonl"
    seqlen([table], settings, tokenizer=tiny, drop_over=100, output=out, limit=2)
    lines = table.read_text().splitlines(keepends=True)
    assert out.read_text() == lines[0]


@pytest.mark.parametrize(("src", "dest"), [("jsonl", "parquet"), ("parquet", "jsonl")])
def test_drop_over_across_formats(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer, src: str, dest: str
) -> None:
    table = write([row(i, w) for i, w in enumerate([1, 300, 2, 3])], tmp_path / f"t.{src}")
    out = tmp_path / f"short.{dest}"
    seqlen([table], settings, tokenizer=tiny, drop_over=100, output=out, limit=3)
    kept = (
        pq.read_table(out).to_pylist()
        if dest == "parquet"
        else [json.loads(x) for x in out.read_text().splitlines()]
    )
    assert [r["example_id"] for r in kept] == [0, 2]
    assert kept[1]["completion"][0]["reasoning"] == "tile tile"


def test_drop_over_keeping_everything_leaves_no_rejects_file(
    tmp_path: Path, settings: Settings, tiny: ChatTokenizer
) -> None:
    table = write([row(0, 1)], tmp_path / "t.parquet")
    out = tmp_path / "short.parquet"
    (tmp_path / "short.rejects.jsonl").write_text("stale\n")
    result = seqlen([table], settings, tokenizer=tiny, drop_over=1000, output=out)
    assert result.rejects is None and not (tmp_path / "short.rejects.jsonl").exists()
    assert pq.read_table(out).num_rows == 1


def test_drop_over_needs_an_output(tmp_path: Path, settings: Settings, tiny: ChatTokenizer) -> None:
    table = write([row(0, 1)], tmp_path / "t.parquet")
    with pytest.raises(ConfigError, match="-o FILE"):
        seqlen([table], settings, tokenizer=tiny, drop_over=100)


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("TEST_MODE", raising=False)
    return tmp_path


def test_cli_prints_the_report_and_writes_json_rows_and_png(
    cli_env: Path, tok_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [row(i, w, difficulty="low" if i % 2 else "high") for i, w in enumerate([1, 5, 900])]
    table = write(rows, cli_env / "filtered.parquet")
    argv = [
        "seqlen",
        "-i",
        str(table),
        "--tokenizer",
        str(tok_dir),
        "--data-model",
        "m",
        "--output-dir",
        "out",
        "--plot",
        "lengths.png",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for expected in (
        "Percentiles",
        "Distribution",
        "Recommended seq_len",
        "By difficulty",
        "reasoning included",
        "seqlen: 3 rows in -> 3 rows out",
    ):
        assert expected in out
    assert (
        "   <=1k         3  100.00%  cum 100.00%  ########################################" in out
    )
    assert (cli_env / "lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Percentiles (linear interpolation)" in out
    assert main([*argv, "--percentiles", "seed"]) == 0
    assert "Percentiles (the seed's order statistics" in capsys.readouterr().out
    assert json.loads((cli_env / "out/m/seqlen_filtered.json").read_text())["rows"] == 3
    assert pq.read_table(cli_env / "out/m/seqlen_filtered.parquet").num_rows == 3


@needs_qwen3
def test_cli_counter_choice_gives_the_same_counts_and_is_reported(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write([row(i, w) for i, w in enumerate([1, 40, 300])], cli_env / "filtered.parquet")
    counted = {}
    for counter in ("auto", "tokenizers"):
        argv = ["seqlen", "-i", str(table), "--tokenizer", str(QWEN3_DIR), "--counter", counter]
        assert main([*argv, "--data-model", counter, "--output-dir", "out"]) == 0
        report = json.loads((cli_env / f"out/{counter}/seqlen_filtered.json").read_text())
        lengths = pq.read_table(cli_env / f"out/{counter}/seqlen_filtered.parquet")
        counted[counter] = (lengths["n_tokens"].to_pylist(), report["tokenizer_info"]["counter"])
    assert counted["auto"][0] == counted["tokenizers"][0]
    assert counted["auto"][1].startswith("tiktoken")
    assert counted["tokenizers"][1] == "tokenizers (asked for with --counter tokenizers)"
    assert "counter: tiktoken" in capsys.readouterr().out


def test_cli_unique_reads_the_unique_table_by_default(
    cli_env: Path, tok_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (cli_env / "out/m").mkdir(parents=True)
    write([row(0, 1)], cli_env / "out/m/unique_dataset.parquet")
    assert (
        main(
            [
                "seqlen",
                "--unique",
                "--tokenizer",
                str(tok_dir),
                "--data-model",
                "m",
                "--output-dir",
                "out",
            ]
        )
        == 0
    )
    assert json.loads((cli_env / "out/m/seqlen_unique.json").read_text())["table"] == "unique"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "x.parquet"], "-o/--output is the table written by --drop-over"),
        (["--tokenizer", "./no/such/dir"], "no such file or folder"),
        (["--hub-dry-run", "hub"], "seqlen does not publish"),
    ],
)
def test_cli_errors_are_one_line(
    cli_env: Path,
    tok_dir: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    table = write([row(0, 1)], cli_env / "t.parquet")
    argv = ["seqlen", "-i", str(table), "--tokenizer", str(tok_dir), *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("kbpipe seqlen: error: ") and message in err


@needs_qwen3
def test_real_qwen3_tokenizer_on_sample_rows(tmp_path: Path, settings: Settings) -> None:
    tok = load_chat_tokenizer(QWEN3_DIR)
    rows = [row(0, 0), row(1, 10)]
    seqlen([write(rows, tmp_path / "t.parquet")], settings, tokenizer=tok)
    got = per_row(settings)
    text = tok.render(rows[1]["prompt"] + rows[1]["completion"])
    assert got[1]["n_tokens"] == len(tok.tokenizer.encode(text, add_special_tokens=False).ids)
    # "tile" * 10 adds ten tokens, the empty think block's "ĊĊ" becomes "Ċ" + "Ċ".
    assert got[1]["n_reasoning_tokens"] == 11 and got[0]["n_reasoning_tokens"] == 0
