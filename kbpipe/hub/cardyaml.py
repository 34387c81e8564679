"""A dataset card's YAML header: what ``datasets.push_to_hub`` writes, and the Hub's metadata.

``configs`` with ``data_files`` per split and ``dataset_info`` with features
and split sizes, so ``load_dataset`` and the Hub viewer read the repo without
guessing; plus license, language, task_categories, tags and size_categories,
which the Hub's search filters by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from kbpipe.hub.shards import StagedConfig

# --- features YAML ------------------------------------------------------------


def features_yaml(schema: pa.Schema) -> list[dict[str, Any]]:
    """``dataset_info.features`` for a schema, in the form datasets writes it."""
    return [{"name": f.name, **_feature(f.type)} for f in schema]


def _feature(kind: pa.DataType) -> dict[str, Any]:
    if pa.types.is_struct(kind):
        return {"struct": [{"name": f.name, **_feature(f.type)} for f in kind]}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        key = "list" if pa.types.is_list(kind) else "large_list"
        inner = _feature(kind.value_type)
        # datasets shortens `list: {dtype: x}` to `list: x` and `list: {struct: [...]}` to a list.
        if list(inner) == ["dtype"]:
            return {key: inner["dtype"]}
        if list(inner) == ["struct"]:
            return {key: inner["struct"]}
        return {key: inner}
    return {"dtype": _value_dtype(kind)}


def _value_dtype(kind: pa.DataType) -> str:
    names = {
        pa.float16(): "float16",
        pa.float32(): "float32",
        pa.float64(): "float64",
        pa.date32(): "date32",
        pa.date64(): "date64",
    }
    return names.get(kind, str(kind))


# Hub metadata (https://huggingface.co/docs/hub/datasets-cards): what a visitor filters by.
TAGS = ("triton", "gpu-kernels", "sft", "reasoning", "kernelbook", "kbpipe")
# The Hub's size_categories buckets, by upper bound.
_SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)


def size_category(n_rows: int) -> str:
    return next((label for bound, label in _SIZES if n_rows < bound), "100M<n<1B")


def front_matter(
    configs: list[StagedConfig], schema: pa.Schema, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The README's YAML: the card's metadata (`meta`, see cards.card_metadata), configs
    with data_files, dataset_info with features and splits."""
    features = features_yaml(schema)
    infos = []
    config_list = []
    for cfg in configs:
        entry: dict[str, Any] = {"config_name": cfg.name}
        if cfg.default:
            entry["default"] = True
        entry["data_files"] = [
            {"split": split, "path": paths[0] if len(paths) == 1 else paths}
            for split, paths in cfg.data_files.items()
        ]
        config_list.append(entry)
        info: dict[str, Any] = {"config_name": cfg.name} if len(configs) > 1 else {}
        info["features"] = features
        info["splits"] = [
            {"name": s.name, "num_bytes": s.num_bytes, "num_examples": s.num_examples}
            for s in cfg.splits
        ]
        info["download_size"] = sum(s.download_size for s in cfg.splits)
        info["dataset_size"] = sum(s.num_bytes for s in cfg.splits)
        infos.append(info)
    return {
        **(meta if meta is not None else {"tags": list(TAGS)}),
        "configs": config_list,
        "dataset_info": infos[0] if len(infos) == 1 else infos,
    }


def read_data_files(readme: Path) -> dict[str, list[str]]:
    """split -> file patterns of a README's default config; empty when it declares none."""
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return {}
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        return {}
    chosen = next((c for c in configs if c.get("default")), None)
    chosen = chosen or next((c for c in configs if c.get("config_name") == "default"), configs[0])
    data_files = chosen.get("data_files")
    if all(isinstance(d, str) for d in _as_list(data_files)):
        return {"train": _as_list(data_files)} if data_files else {}
    out: dict[str, list[str]] = {}
    for entry in _as_list(data_files):
        if isinstance(entry, dict) and "split" in entry:
            out.setdefault(str(entry["split"]), []).extend(_as_list(entry.get("path")))
    return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
