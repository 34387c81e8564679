"""Hub pull and publish (kbpipe.hub.publish, kbpipe upload), with a recording HfApi and a
local cache."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import CommitOperationAdd, CommitOperationDelete

from kbpipe import cli
from kbpipe.config import Settings
from kbpipe.errors import ConfigError, InputError, KbpipeError
from kbpipe.hub import publish as hub
from kbpipe.hub.publish import PublishReport, publish_table
from kbpipe.hub.pull import pull_table
from kbpipe.hub.splits import legacy_split_indices
from kbpipe.io.lineage import StepResult
from kbpipe.io.tables import file_sha256

TOKEN = "hf_kbpipeTestToken0123456789"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class RecordingApi:
    """Stands in for HfApi: records calls and keeps the repo's files as commits change them."""

    def __init__(self, files: list[str] | None = None) -> None:
        self.files: dict[str, bytes] = dict.fromkeys(files or [], b"")
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.commits: list[list[Any]] = []

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_repo", repo_id, kwargs))

    def list_repo_files(self, repo_id: str, **kwargs: Any) -> list[str]:
        self.calls.append(("list_repo_files", repo_id, kwargs))
        return sorted(self.files)

    def create_commit(self, repo_id: str, operations: list[Any], **kwargs: Any) -> None:
        self.calls.append(("create_commit", repo_id, kwargs))
        self.commits.append(list(operations))
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                # The staging folder is gone after the call, as it would be after an upload.
                self.files[op.path_in_repo] = Path(op.path_or_fileobj).read_bytes()
            elif isinstance(op, CommitOperationDelete):
                del self.files[op.path_in_repo]

    def rows(self, path_in_repo: str, tmp_path: Path) -> int:
        local = tmp_path / "remote" / path_in_repo
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(self.files[path_in_repo])
        return pq.ParquetFile(local).metadata.num_rows


def write_evals(path: Path, n: int = 200, *, n_modules: int = 40, **extra: list[Any]) -> Path:
    """An evals-shaped table (nested prompt/completion/info) written by polars."""
    rng = random.Random(n)
    frame = pl.DataFrame(
        {
            "example_id": list(range(n)),
            "prompt": [[{"role": "user", "content": f"task {i}"}] for i in range(n)],
            "completion": [
                [
                    {
                        "role": "assistant",
                        "content": "<answer>x</answer>",
                        "reasoning": rng.randbytes(300).hex(),
                    }
                ]
                for _ in range(n)
            ],
            "reward": [round(rng.random(), 3) for _ in range(n)],
            "info": [
                {"module_name": f"Module{i % n_modules}", "python_code": "x"} for i in range(n)
            ],
            "difficulty": [["low", "medium", "high"][i % 3] for i in range(n)],
            "oai_tools": [None] * n,
            **extra,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, row_group_size=50)
    return path


def publish_step(result: StepResult, settings: Settings, **kwargs: Any) -> PublishReport:
    """What the step runner does after a step: publish its output with its stats."""
    return publish_table(result.output, settings, stats=result.to_dict(settings), **kwargs)


def finished(settings: Settings, path: Path, step: str = "filter") -> StepResult:
    n = pq.ParquetFile(path).metadata.num_rows
    result = StepResult(step, output=path, rows_in=n + 5, rows_out=n)
    result.drop("reward <= threshold", 5)
    result.params = {"reward_threshold": 0.85, "rater": "offline"}
    return result.finish(settings)


@pytest.fixture
def tsettings(settings: Settings) -> Settings:
    return settings.replace(hf_token=TOKEN)


def all_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


# --- publish with the recording api -------------------------------------------------------


def test_publish_step_creates_repo_and_commits_once(tsettings: Settings, tmp_path: Path) -> None:
    result = finished(tsettings, write_evals(tsettings.table_path("filtered")))
    api = RecordingApi([".gitattributes"])
    publish_step(result, tsettings, table="filtered", split="module", private=True, api=api)

    repo = "siro1/kernelbook-testmodel-evals-filtered"
    assert [(c[0], c[1]) for c in api.calls] == [
        ("create_repo", repo),
        ("list_repo_files", repo),
        ("create_commit", repo),
    ]
    assert api.calls[0][2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert api.calls[2][2]["repo_type"] == "dataset"
    (ops,) = api.commits
    assert [type(op).__name__ for op in ops] == ["CommitOperationAdd"] * 3
    assert sorted(api.files) == [
        ".gitattributes",
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
    ]
    meta = yaml.safe_load(api.files["README.md"].decode().split("---")[1])
    sizes = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert sizes == {
        "train": api.rows("data/train-00000-of-00001.parquet", tmp_path),
        "validation": api.rows("data/validation-00000-of-00001.parquet", tmp_path),
    }
    assert sum(sizes.values()) == 200
    assert not any(TOKEN.encode() in blob for blob in api.files.values())
    # Nothing is left behind beside the output.
    assert sorted(p.name for p in tsettings.model_dir.iterdir()) == [
        "filtered_dataset.parquet",
        "filtered_dataset.parquet.stats.json",
    ]


def test_reupload_with_fewer_shards_deletes_stale_ones_in_the_same_commit(
    tsettings: Settings,
) -> None:
    path = write_evals(tsettings.table_path("filtered"), 400)
    stats = finished(tsettings, path).to_dict(tsettings)
    api = RecordingApi([".gitattributes", "notes/extra.parquet"])
    publish_table(
        path,
        tsettings,
        table="filtered",
        stats=stats,
        split="none",
        api=api,
        max_shard_bytes=20_000,
    )
    first = sorted(f for f in api.files if f.startswith("data/"))
    assert len(first) >= 3

    report = publish_table(path, tsettings, table="filtered", stats=stats, split="none", api=api)
    assert len(api.commits) == 2
    second = api.commits[1]
    deleted = sorted(op.path_in_repo for op in second if isinstance(op, CommitOperationDelete))
    added = sorted(op.path_in_repo for op in second if isinstance(op, CommitOperationAdd))
    assert deleted == first
    assert added == ["README.md", "data/train-00000-of-00001.parquet"]
    assert sorted(api.files) == [
        ".gitattributes",
        "README.md",
        "data/train-00000-of-00001.parquet",
        "notes/extra.parquet",
    ]
    assert [op["op"] for op in report.operations].count("delete") == len(first)


class UnreachableHub(RecordingApi):
    def create_commit(self, repo_id: str, operations: list[Any], **kwargs: Any) -> None:
        raise ConnectionError("connection reset by peer")


def test_a_failed_commit_is_one_clear_error_and_keeps_the_table(tsettings: Settings) -> None:
    path = write_evals(tsettings.table_path("unique", "no_reasoning"), 30)
    with pytest.raises(KbpipeError) as err:
        publish_table(
            path, tsettings, table="unique", stats={}, no_reasoning=True, api=UnreachableHub()
        )
    assert "connection reset by peer" in str(err.value)
    assert "kbpipe upload unique --no-reasoning" in str(err.value)
    assert path.exists() and TOKEN not in str(err.value)


def test_publish_without_token_fails_before_any_work(settings: Settings) -> None:
    path = write_evals(settings.table_path("filtered"), 20)
    before = sorted(os.listdir(path.parent))
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        publish_table(path, settings, table="filtered", stats={}, split="module")
    assert sorted(os.listdir(path.parent)) == before


# --- dry run ------------------------------------------------------------------------------


def test_dry_run_stages_a_folder_datasets_loads(tsettings: Settings, tmp_path: Path) -> None:
    import datasets

    result = finished(tsettings, write_evals(tsettings.table_path("filtered"), 300))
    hub_dir = tmp_path / "hub"
    report = publish_step(result, tsettings, table="filtered", split="module", dry_run_dir=hub_dir)

    folder = hub_dir / "kernelbook-testmodel-evals-filtered"
    assert report.folder == folder
    assert sorted(p.name for p in hub_dir.iterdir()) == [
        "kernelbook-testmodel-evals-filtered",
        "kernelbook-testmodel-evals-filtered.operations.json",
    ]
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
    ]
    ops = json.loads((hub_dir / "kernelbook-testmodel-evals-filtered.operations.json").read_text())
    assert ops["repo_id"] == "siro1/kernelbook-testmodel-evals-filtered"
    assert ops["create_repo"] == {"private": False, "exist_ok": True}
    assert [(o["op"], o["path_in_repo"]) for o in ops["operations"]] == [("add", f) for f in files]
    assert all(o["bytes"] == (folder / o["path_in_repo"]).stat().st_size for o in ops["operations"])

    ds = datasets.load_dataset(str(folder))
    meta = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    declared = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert {k: len(v) for k, v in ds.items()} == declared
    assert sum(declared.values()) == 300 and declared["validation"] > 0
    train_modules = {r["module_name"] for r in ds["train"]["info"]}
    val_modules = {r["module_name"] for r in ds["validation"]["info"]}
    assert train_modules and val_modules and not train_modules & val_modules
    assert ds["train"].features["completion"].feature["reasoning"].dtype == "string"
    assert TOKEN not in all_text(hub_dir)


def test_second_dry_run_with_fewer_shards_lists_the_deletes(
    tsettings: Settings, tmp_path: Path
) -> None:
    path = write_evals(tsettings.table_path("unique"), 300)
    stats = finished(tsettings, path, "dedupe").to_dict(tsettings)
    kwargs = dict(table="unique", stats=stats, split="legacy", dry_run_dir=tmp_path / "hub")
    publish_table(path, tsettings, max_shard_bytes=30_000, **kwargs)
    folder = tmp_path / "hub" / "kernelbook-testmodel-evals-unique"
    old = sorted(p.relative_to(folder).as_posix() for p in (folder / "data").iterdir())
    assert len(old) > 2

    report = publish_table(path, tsettings, **kwargs)
    new = ["data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet"]
    deletes = sorted(o["path_in_repo"] for o in report.operations if o["op"] == "delete")
    assert deletes == [f for f in old if f not in new] and len(deletes) >= 2
    assert sorted(p.relative_to(folder).as_posix() for p in (folder / "data").iterdir()) == new
    assert [p.name for p in (tmp_path / "hub").iterdir() if p.name.startswith(".")] == []


def test_merged_table_publishes_configs_base_synthetic_all(
    tsettings: Settings, tmp_path: Path
) -> None:
    import datasets

    sources = ["base"] * 150 + ["synthetic"] * 90
    path = write_evals(tsettings.table_path("filtered", "merged"), 240, data_source=sources)
    result = finished(tsettings, path, "merge")
    report = publish_step(
        result,
        tsettings,
        table="filtered",
        split="module",
        dry_run_dir=tmp_path / "hub",
        merged=True,
    )
    folder = tmp_path / "hub" / "kernelbook-testmodel-evals-filtered-merged"
    assert report.folder == folder
    sizes = {}
    for name in ("base", "synthetic", "all"):
        ds = datasets.load_dataset(str(folder), name)
        sizes[name] = {k: len(v) for k, v in ds.items()}
        if name != "all":
            assert set(ds["train"]["data_source"]) == {name}
    assert sum(sizes["base"].values()) == 150 and sum(sizes["synthetic"].values()) == 90
    assert sizes["all"] == {k: sizes["base"][k] + sizes["synthetic"][k] for k in sizes["all"]}
    default = datasets.load_dataset(str(folder))
    assert {k: len(v) for k, v in default.items()} == sizes["all"]
    # "all" points at the other configs' files instead of copying them.
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "base", "synthetic"]


def test_table_with_a_split_column_keeps_its_assignment(
    tsettings: Settings, tmp_path: Path
) -> None:
    labels = ["validation" if i % 4 == 0 else "train" for i in range(80)]
    path = write_evals(tsettings.table_path("unique", "no_reasoning"), 80, split=labels)
    result = finished(tsettings, path, "strip-reasoning")
    report = publish_step(
        result,
        tsettings,
        table="unique",
        split="module",
        dry_run_dir=tmp_path / "hub",
        no_reasoning=True,
    )
    assert report.repo_id == "siro1/kernelbook-testmodel-evals-unique-no-reasoning"
    folder = report.folder
    val = pq.read_table(folder / "data/validation-00000-of-00001.parquet")
    assert val.column("example_id").to_pylist() == list(range(0, 80, 4))
    assert "split" not in val.column_names
    assert "as recorded in the input's `split` column" in (folder / "README.md").read_text()


def test_tables_without_seed_splits_publish_one_train_split(
    tsettings: Settings, sample_dir: Path, tmp_path: Path
) -> None:
    # The bundled KernelBook table stands in for the synthetic-tasks table's shape.
    result = finished(tsettings, sample_dir / "kernelbook.parquet", "prompts")
    report = publish_step(
        result, tsettings, table="synthetic", split="none", dry_run_dir=tmp_path / "hub"
    )
    assert report.repo_id == "siro1/kernelbook-testmodel-synthetic-tasks"
    assert [(s.name, s.num_examples) for s in report.configs[0].splits] == [
        ("train", pq.ParquetFile(sample_dir / "kernelbook.parquet").metadata.num_rows)
    ]


def test_card_shows_seqlen_only_when_computed_on_the_published_file(
    tsettings: Settings, tmp_path: Path
) -> None:
    path = write_evals(tsettings.table_path("filtered"), 40)
    report = {
        "tokenizer": "tok",
        "rows": 40,
        "max": 5000,
        "percentiles": {"99": 4000},
        "inputs": [{"path": str(path), "sha256": file_sha256(path)}],
    }
    tsettings.seqlen_json_path("filtered").write_text(json.dumps(report))
    kwargs = dict(table="filtered", stats={}, split="module", dry_run_dir=tmp_path / "hub")
    card = publish_table(path, tsettings, **kwargs).folder / "README.md"
    assert "## Sequence lengths" in card.read_text() and "| | 4,000 |" in card.read_text()
    write_evals(path, 41)  # the table changed since seqlen ran
    card = publish_table(path, tsettings, **kwargs).folder / "README.md"
    assert "## Sequence lengths" not in card.read_text()


def test_a_jsonl_table_publishes_like_parquet(tsettings: Settings, tmp_path: Path) -> None:
    import datasets

    jsonl = tmp_path / "filtered_dataset.jsonl"
    pl.read_parquet(write_evals(tmp_path / "t.parquet", 60)).write_ndjson(jsonl)
    report = publish_table(
        jsonl, tsettings, table="filtered", stats={}, split="legacy", dry_run_dir=tmp_path / "hub"
    )
    ds = datasets.load_dataset(str(report.folder))
    assert {k: len(v) for k, v in ds.items()} == {"train": 54, "validation": 6}
    assert ds["validation"]["example_id"] == legacy_split_indices(60)[1].tolist()


# --- pull ---------------------------------------------------------------------------------


def cache_repo(cache: Path, repo_id: str, staged: Path, commit: str = COMMIT) -> None:
    """Lay a staged folder out as huggingface_hub's cache has a downloaded snapshot."""
    root = cache / ("datasets--" + repo_id.replace("/", "--"))
    shutil.copytree(staged, root / "snapshots" / commit)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hub cache with HF_HUB_OFFLINE on: nothing here may touch the network."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_pull_of_an_uncached_dataset_offline_says_how_to_pass_a_file(
    settings: Settings, offline_cache: Path
) -> None:
    with pytest.raises(InputError) as err:
        pull_table("hf://datasets/siro1/kernelbook-testmodel-evals", settings)
    message = str(err.value)
    assert "\n" not in message
    assert "cannot be reached and nothing is cached" in message and "-i PATH" in message


@pytest.mark.parametrize("uri", ["hf://siro1/x", "hf://datasets/only-org", "datasets/a/b"])
def test_pull_rejects_malformed_addresses(settings: Settings, uri: str) -> None:
    with pytest.raises(InputError, match="hf://datasets/ORG/NAME"):
        pull_table(uri, settings)


def test_pull_of_a_one_split_repo_gives_its_shards_and_revision(
    tsettings: Settings, offline_cache: Path, tmp_path: Path
) -> None:
    path = write_evals(tsettings.table_path("source"), 120)
    publish_table(
        path,
        tsettings,
        table="source",
        stats={},
        split="none",
        dry_run_dir=tmp_path / "hub",
        max_shard_bytes=20_000,
    )
    repo = "siro1/kernelbook-testmodel-evals"
    cache_repo(offline_cache, repo, tmp_path / "hub" / "kernelbook-testmodel-evals")

    resolved = pull_table(f"hf://datasets/{repo}", tsettings)
    assert resolved.revision == COMMIT
    assert len(resolved.paths) > 1 and all(p.suffix == ".parquet" for p in resolved.paths)
    ids = [i for p in resolved.paths for i in pq.read_table(p).column("example_id").to_pylist()]
    assert ids == list(range(120))
    assert resolved.lineage()[0]["revision"] == COMMIT


def test_pull_of_a_json_only_repo_converts_it(
    settings: Settings, offline_cache: Path, tmp_path: Path
) -> None:
    staged = tmp_path / "kb"
    staged.mkdir()
    rows = [{"module_name": f"M{i}", "python_code": "x", "uuid": i} for i in range(7)]
    (staged / "dataset_permissive.json").write_text(json.dumps(rows))
    cache_repo(offline_cache, "GPUMODE/KernelBook", staged)
    resolved = pull_table("hf://datasets/GPUMODE/KernelBook@main", settings)
    (path,) = resolved.paths
    assert pq.read_table(path).column("module_name").to_pylist() == [f"M{i}" for i in range(7)]


def test_round_trip_through_the_hub_cache_keeps_the_split(
    tsettings: Settings, tmp_path: Path
) -> None:
    """Publish, read back offline in a fresh process (HF_HUB_OFFLINE=1), publish again."""
    path = write_evals(tsettings.table_path("filtered"), 240)
    stats = finished(tsettings, path).to_dict(tsettings)
    first = publish_table(
        path,
        tsettings,
        table="filtered",
        stats=stats,
        split="legacy",
        dry_run_dir=tmp_path / "hub1",
    )
    repo = "siro1/kernelbook-testmodel-evals-filtered"
    cache = tmp_path / "hf-cache"
    cache_repo(cache, repo, first.folder)

    code = (
        "import json, sys; from pathlib import Path; from kbpipe.config import Settings; "
        "from kbpipe.hub.pull import pull_table; "
        "s = Settings(data_model='testmodel', output_dir=Path(sys.argv[2])); "
        "r = pull_table(sys.argv[1], s); "
        "print(json.dumps({'paths': [str(p) for p in r.paths], 'revision': r.revision}))"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TOKEN", None)
    out = subprocess.run(
        [sys.executable, "-c", code, f"hf://datasets/{repo}", str(tmp_path / "pulled")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    pulled = json.loads(out.stdout.strip().splitlines()[-1])
    assert pulled["revision"] == COMMIT
    (combined,) = map(Path, pulled["paths"])
    table = pq.read_table(combined)
    assert table.column("split").to_pylist().count("validation") == 24  # ceil(0.1 * 240)

    again = publish_table(
        combined,
        tsettings,
        table="filtered",
        stats=stats,
        split="module",
        dry_run_dir=tmp_path / "hub2",
    )
    for split in ("train", "validation"):
        name = f"data/{split}-00000-of-00001.parquet"
        before = pq.read_table(first.folder / name).column("example_id").to_pylist()
        after = pq.read_table(again.folder / name).column("example_id").to_pylist()
        assert after == before


# --- kbpipe upload --------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("DATA_MODEL", "testmodel")
    return ["--output-dir", str(tmp_path / "outputs"), "--env-file", str(tmp_path / "none.env")]


def test_upload_without_token_is_a_clear_error_before_reading(
    cli_env: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["upload", "filtered", *cli_env]) == 1
    err = capsys.readouterr().err
    assert "kbpipe upload: error:" in err and "HF_TOKEN" in err


def test_upload_publishes_with_the_step_stats_and_never_prints_the_token(
    cli_env: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(data_model="testmodel", output_dir=tmp_path / "outputs")
    finished(settings, write_evals(settings.table_path("unique"), 60), "dedupe")
    api = RecordingApi()
    monkeypatch.setattr(hub, "api_factory", lambda token: api if token == TOKEN else None)
    monkeypatch.setenv("HF_TOKEN", TOKEN)

    assert cli.main(["upload", "unique", "--private", "--split", "legacy", *cli_env]) == 0
    out = capsys.readouterr()
    assert "published siro1/kernelbook-testmodel-evals-unique" in out.out
    assert "train 54, validation 6" in out.out
    assert TOKEN not in out.out + out.err
    assert api.calls[0][2]["private"] is True
    card = api.files["README.md"].decode()
    assert "| dedupe | 65 | 60 | 5 reward <= threshold |" in card
    assert TOKEN not in card


def test_upload_all_dry_run_stages_every_built_table(
    cli_env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_model="testmodel", output_dir=tmp_path / "outputs")
    for which in ("source", "filtered", "unique"):
        finished(settings, write_evals(settings.table_path(which), 50))
    finished(settings, write_evals(settings.table_path("filtered", "no_reasoning"), 50))
    hub_dir = tmp_path / "hub"
    assert cli.main(["upload", "all", "--dry-run", str(hub_dir), *cli_env]) == 0
    staged = sorted(p.name for p in hub_dir.iterdir() if p.is_dir())
    assert staged == [
        "kernelbook-testmodel-evals",
        "kernelbook-testmodel-evals-filtered",
        "kernelbook-testmodel-evals-filtered-no-reasoning",
        "kernelbook-testmodel-evals-unique",
    ]
    evals = sorted(p.name for p in (hub_dir / "kernelbook-testmodel-evals" / "data").iterdir())
    assert evals == ["train-00000-of-00001.parquet"]
    assert "staged siro1/kernelbook-testmodel-evals-filtered" in capsys.readouterr().out
