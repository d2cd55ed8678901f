"""MLflow tracking for the stages. The only module that imports mlflow.

Every stage opens one run named after the stage and tagged `stage=<name>`. Runs of one pipeline
execution hang under a parent run `pipeline-<key>` (tag `pipeline_run=<key>`), where the key
hashes the params file and the git commit, or is `PIPELINE_RUN_ID` when set: the MLflow UI nests
the stages under it and `tags.pipeline_run = '<key>'` filters them.

Store: `MLFLOW_TRACKING_URI` when set (a team server), else the SQLite file `mlflow.db` in the
project root with artifacts in `mlartifacts/`. Experiment: `MLFLOW_EXPERIMENT_NAME` or
`imbalance-gan`.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_EXPERIMENT = "imbalance-gan"
# Tags a nested run (evaluate's variants and seeds) takes from its stage run: the pipeline
# execution, and the settings a study compares (pipeline/stage.py `setting_tags`).
INHERITED_TAGS = ("pipeline_run", "prepare.imbalance", "prepare.keep_counts", "train_gan.method")


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root.resolve()}/mlflow.db"


def pipeline_key(params_digest: str, root: Path) -> str:
    if os.environ.get("PIPELINE_RUN_ID"):
        return os.environ["PIPELINE_RUN_ID"]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "no-git"
    return hashlib.sha256(f"{params_digest}:{commit}".encode()).hexdigest()[:12]


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested dict -> {'a.b.c': float}. An interval [lo, hi] becomes `<key>_lo` and `<key>_hi`;
    other non-numeric leaves are dropped (MLflow metrics are numbers)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, prefix=key + "."))
        elif isinstance(v, (list, tuple)) and len(v) == 2:
            out.update(flatten({f"{key}_lo": v[0], f"{key}_hi": v[1]}))
        elif isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and v == v:
            out[key] = float(v)  # NaN is skipped: MLflow shows a missing value, not a fake one
    return out


class StageRun:
    """Logging handle for one MLflow run (a stage, or a variant nested in a stage)."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.log_history([(step or 0, flatten(metrics))])

    def log_history(self, rows: list[tuple[int, Mapping[str, float]]]) -> None:
        """Many (step, {name: value}) rows in a few round trips (a metric's history in the UI)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step)) for step, m in rows for k, v in m.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def log_dataset(self, *, name: str, digest: str, source: str, context: str) -> None:
        """Record the data a run used as an MLflow dataset input."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest[:36], source_type="local", source=source)
        self.client.log_inputs(
            self.run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", context)])]
        )

    def log_data(self, *, name: str, digest: str, source: str, context: str,
                 features: Any = None, targets: Any = None, table: Any = None) -> None:
        """Record a dataset this run used through `mlflow.data` (the runs table's Dataset
        column): arrays (`features`, `targets`) or a pandas `table`, with the data's `source`
        (a local path) and `digest`; `context` says how it was used (training, validation, ...)."""
        import warnings

        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # schema and source-resolution hints, not problems
            warnings.simplefilter("ignore")
            if table is not None:
                data = mlflow.data.from_pandas(table, source=source, name=name, digest=digest[:36])
            else:
                data = mlflow.data.from_numpy(features, source=source, targets=targets, name=name,
                                              digest=digest[:36])
            entity = data._to_mlflow_entity()
        self.client.log_inputs(self.run_id, datasets=[
            DatasetInput(entity, [InputTag("mlflow.data.context", context)])])

    @contextmanager
    def child(self, name: str, tags: Mapping[str, str]) -> Iterator[StageRun]:
        """A run nested under this one (evaluate: one per variant)."""
        run = self.client.get_run(self.run_id)
        yield from _run(self.client, run.info.experiment_id, name, {
            **{k: v for k, v in run.data.tags.items() if k in INHERITED_TAGS},
            **tags, "mlflow.parentRunId": self.run_id,
        })


@contextmanager
def stage_run(stage: str, *, params_digest: str, root: str | Path = ".",
              tags: Mapping[str, str] | None = None) -> Iterator[StageRun]:
    """Open the MLflow run of one stage execution, with `tags` besides its own; marks it FAILED
    if the stage raises."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    root = Path(root)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(root))
    exp_id = _experiment(client, root)
    key = pipeline_key(params_digest, root)
    parent = _pipeline_parent(client, exp_id, key)
    yield from _run(client, exp_id, stage, {
        **(tags or {}), "stage": stage, "pipeline_run": key, "mlflow.parentRunId": parent,
        "params_digest": params_digest,
    })


def variant_table(params_digest: str, root: str | Path = ".") -> Any:
    """The evaluate variants of this pipeline execution as a pandas DataFrame built with
    `mlflow.search_runs`: one row per variant (its latest run), column `variant` plus the metrics.
    Empty when the store has none."""
    import mlflow
    import pandas as pd

    root = Path(root)
    mlflow.set_tracking_uri(tracking_uri(root))
    exp = mlflow.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME",
                                                       DEFAULT_EXPERIMENT))
    if exp is None:
        return pd.DataFrame()
    key = pipeline_key(params_digest, root)
    runs = mlflow.search_runs(
        [exp.experiment_id], output_format="pandas", order_by=["start_time DESC"],
        filter_string=f"tags.kind = 'variant' and tags.pipeline_run = '{key}'",
    )
    if runs.empty:
        return runs
    # tags.variant names a share-sweep variant (gan@0.5); augmentation is its family (gan)
    name = runs["tags.variant"] if "tags.variant" in runs else runs["tags.augmentation"]
    runs = runs.assign(_variant=name.fillna(runs["tags.augmentation"]))
    runs = runs.drop_duplicates("_variant")
    metrics = runs[[c for c in runs.columns if c.startswith("metrics.")]]
    table = metrics.rename(columns=lambda c: c.removeprefix("metrics."))
    table.insert(0, "variant", runs["_variant"].to_numpy())
    return table.reset_index(drop=True)


def _run(client: Any, exp_id: str, name: str, tags: Mapping[str, str]) -> Iterator[StageRun]:
    run = client.create_run(exp_id, run_name=name, tags=dict(tags))
    status = "FAILED"
    try:
        yield StageRun(client, run.info.run_id)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status=status)


# MLflow 3's UI opens an experiment by its kind: unmarked, it guesses GenAI and shows traces;
# marked as model training it opens on the runs table (the stages and evaluate's variants).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def _experiment(client: Any, root: Path) -> str:
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if not any(k in exp.tags for k in EXPERIMENT_KIND):  # one made before, or by hand
            for k, v in EXPERIMENT_KIND.items():
                client.set_experiment_tag(exp.experiment_id, k, v)
        return exp.experiment_id
    location = None  # a server decides (it proxies artifacts to its own store)
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):  # a local file store: keep artifacts beside the database
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


def _pipeline_parent(client: Any, exp_id: str, key: str) -> str:
    found = client.search_runs(
        [exp_id], filter_string=f"tags.pipeline_run = '{key}' and tags.kind = 'pipeline'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        exp_id, run_name=f"pipeline-{key}", tags={"pipeline_run": key, "kind": "pipeline"}
    )
    client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id
