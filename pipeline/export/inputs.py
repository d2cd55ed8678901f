"""What the export stage reads besides the images: the stages' metrics, the synthesizer's settings
(from its checkpoint: what was used, not what params say now) and the data's hashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import file_sha256, load_checkpoint
from pipeline.config import DataConfig
from pipeline.export.rows import SPLITS, ExportSet
from pipeline.report.inputs import read_json

REQUIRED = {"prepare": "prepare", "train_gan": "train_gan", "generate": "generate"}


def read_metrics(folder: Path) -> dict[str, Any]:
    """metrics/{prepare,train_gan,generate}.json, and evaluate.json or None when evaluate is not
    in the pipeline (then the export falls back to generate's shipped set)."""
    docs: dict[str, Any] = {name: read_json(folder / f"{name}.json", stage)
                            for name, stage in REQUIRED.items()}
    path = folder / "evaluate.json"
    docs["evaluate"] = read_json(path, "evaluate") if path.exists() else None
    return docs


def synthesizer_settings(checkpoint: Path) -> dict[str, Any]:
    """The params sections the generator was trained with, flattened (`section.key`)."""
    config = load_checkpoint(checkpoint).get("config") or {}
    return {f"{section}.{k}": v for section, values in config.items()
            if isinstance(values, dict) for k, v in values.items()}


def source_facts(data: DataConfig, prepared: Path, lock: Path) -> dict[str, str]:
    """Where the real images came from and the hashes that pin them: DVC's hash of `data.path`
    as dvc.lock records it for prepare, and the sha256 of each prepared split file."""
    facts = {"source": data.source, "path": data.path or ""}
    if data.source == "digits":
        facts["path"] = "scikit-learn's bundled digits (sklearn.datasets.load_digits)"
    recorded = _lock_hash(lock, data.path) if data.source != "digits" else None
    if recorded:
        facts["data.path hash (DVC, dvc.lock)"] = recorded
    for s in SPLITS:
        facts[f"prepared {s}.npz sha256"] = file_sha256(prepared / f"{s}.npz")
    return facts


def _lock_hash(lock: Path, path: str | None) -> str | None:
    """`md5:<hash>` of prepare's dependency `path` in dvc.lock, if recorded (None otherwise)."""
    import yaml

    if not path or not lock.is_file():
        return None
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    except yaml.YAMLError:
        return None
    for dep in (stages.get("prepare") or {}).get("deps") or []:
        if isinstance(dep, dict) and dep.get("path") == path and dep.get("md5"):
            return f"md5:{dep['md5']}"
    return None


def summary(ex: ExportSet, fmt: str) -> dict[str, Any]:
    """metrics/export.json: what the export holds, per class and split."""
    k = len(ex.class_names)
    train = ex.parts["train"]
    return {"format": fmt, "chosen": ex.chosen,
            "synthetic_from": "evaluate selection" if ex.chosen else "generate target",
            "real_per_class": train.counts(k, synthetic=False),
            "synthetic_per_class": train.counts(k, synthetic=True),
            "counts": {s: p.counts(k) for s, p in ex.parts.items()},
            "n_images": {s: len(p.labels) for s, p in ex.parts.items()},
            "n_synthetic": int(train.synthetic.sum()),
            "patient_ids": train.patient_ids is not None}


def digest(ex: ExportSet, split: str) -> str:
    """A format-independent fingerprint of one split of the export (MLflow's dataset digest)."""
    import hashlib

    p = ex.parts[split]
    h = hashlib.blake2b(p.images.tobytes(), digest_size=16)
    for a in (p.labels, p.synthetic, p.seeds):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
