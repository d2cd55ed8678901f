"""Scale-out with torchrun (gloo on CPU) and the training path against a typical eager loop."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import (
    REPO, VENV_BIN, copy_project, make_images, new_mlflow_db, run, stage_env, write_extractor,
    write_params,
)
from torchrun_fit import fit
from pipeline.artifacts import save_split
from pipeline.config import DcganConfig
from pipeline.gan.losses import LOSSES
from pipeline.synthesizers.dcgan import build_state, d_step, g_step
from pipeline.pixels import to_unit
from pipeline.pool import SyntheticPool

CPU = torch.device("cpu")


# --- the project's step against the loop everyone writes first ------------------------------------

def test_device_resident_step_matches_a_typical_eager_loop_on_a_fixed_batch() -> None:
    """d_step/g_step (uint8 data resident on the device, real and fake through D in one pass)
    give the losses of the textbook loop (float batch from the host, two D passes)."""
    images, labels = make_images([6, 6])
    cfg = DcganConfig(width=8, latent_dim=16, batch_size=8, spectral_norm=False)
    torch.manual_seed(0)
    state = build_state(cfg, n_classes=2, image_size=8, channels=1, device=CPU)
    G, D = copy.deepcopy(state["G"]), copy.deepcopy(state["D"])
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    idx = torch.tensor([0, 3, 5, 6, 7, 9, 11, 2])
    data, targets = torch.from_numpy(images), torch.from_numpy(labels)
    z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
    hinge = LOSSES["hinge"]
    ours_d, _, _ = d_step(state, to_unit(data[idx]), targets[idx], z1, loss=hinge, augment=[])
    # the typical loop: float images prepared on the host, separate D passes
    real = torch.from_numpy(images[idx.numpy()]).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = targets[idx]
    with torch.no_grad():
        fake = G(z1, y)
    ref_d = F.relu(1 - D(real, y)).mean() + F.relu(1 + D(fake, y)).mean()
    opt_d.zero_grad()
    ref_d.backward()
    assert ours_d.item() == pytest.approx(ref_d.item(), rel=1e-6)
    # the same gradients, up to summation order (Adam would amplify that noise in near-zero
    # gradients, so the comparison is on gradients, not on updated weights)
    for a, b in zip(state["D"].parameters(), D.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    # generator step against the same discriminator weights
    D.load_state_dict(state["D"].state_dict())
    ours_g = g_step(state, y, z2, loss=hinge, augment=[])
    ref_g = -D(G(z2, y), y).mean()
    opt_g.zero_grad()
    ref_g.backward()
    assert ours_g.item() == pytest.approx(ref_g.item(), rel=1e-6)


# --- torchrun, 2 processes, gloo ------------------------------------------------------------------

@pytest.fixture(scope="module")
def torchrun_project(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
                     ) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("torchrun")
    new_mlflow_db(root / "mlflow.db", pytestconfig)
    project = copy_project(root / "project")
    write_params(project / "params.yaml",
                 train_gan={"steps": 8, "log_every": 4, "eval_every": 0, "checkpoint_every": 4,
                            "device": "cpu"},
                 dcgan={"width": 8, "batch_size": 16},
                 features={"steps": 10, "width": 4, "device": "cpu"},
                 evaluate={"steps": 6, "width": 4, "seeds": 1, "bootstrap": 10, "batch_size": 16,
                           "variants": ["real", "gan"], "device": "cpu"})
    images, labels = make_images([24, 8])
    for split in ("train", "val", "test"):
        save_split(project / f"data/prepared/{split}.npz", images, labels)
    (project / "models").mkdir()
    write_extractor(project / "models/features.pt", images, labels)
    synth_x, synth_y = make_images([0, 16], seed=3)
    (project / "data/synthetic").mkdir(parents=True)
    SyntheticPool(synth_x, synth_y, np.arange(16), np.linspace(1, 0, 16),
                  np.arange(16)).save(project / "data/synthetic/pool.npz")
    env = {**stage_env(root), "PIPELINE_RUN_ID": "torchrun-test"}
    return project, env


def torchrun(project: Path, env: dict, *args: str):
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", *args]
    return run(cmd, cwd=project, env=env, timeout=300)


def stage_runs(env: dict, stage: str) -> list:
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("imbalance-gan")
    return [r for r in client.search_runs([exp.experiment_id], f"tags.stage = '{stage}'")
            if "augmentation" not in r.data.tags]


@pytest.mark.slow  # torchrun
def test_train_gan_runs_on_two_processes_and_rank_0_alone_writes(torchrun_project) -> None:
    project, env = torchrun_project
    result = torchrun(project, env, "-m", "stages.train_gan", "--data", "data/prepared",
                      "--features", "models/features.pt", "--checkpoint", "models/generator.pt",
                      "--state", "checkpoints/train_gan.pt", "--plots", "plots/train_gan",
                      "--metrics", "metrics/train_gan.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("train_gan: dcgan, 8 steps in") == 1  # printed by rank 0 only
    assert "on 2 processes (cpu)" in result.stdout
    ckpt = torch.load(project / "models/generator.pt", weights_only=True)
    assert ckpt["step"] == 8
    state = torch.load(project / "checkpoints/train_gan.pt", weights_only=True)
    assert state["step"] == 8 and len(state["rng"]) == 2  # both ranks' random streams
    # the two ranks drew different batches (their RNG streams differ)
    assert not torch.equal(state["rng"][0]["generator"], state["rng"][1]["generator"])
    metrics = (project / "metrics/train_gan.json").read_text()
    assert '"n_processes": 2' in metrics
    runs = stage_runs(env, "train_gan")
    assert len(runs) == 1 and runs[0].data.params["n_processes"] == "2"
    leftovers = [p.name for p in (project / "models").iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.slow  # torchrun
def test_evaluate_runs_on_two_processes_and_writes_one_set_of_metrics(torchrun_project) -> None:
    project, env = torchrun_project
    result = torchrun(project, env, "-m", "stages.evaluate", "--data", "data/prepared",
                      "--synthetic", "data/synthetic", "--plots", "plots/evaluate", "--metrics",
                      "metrics/evaluate.json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((project / "metrics/evaluate.json").read_text())
    m = doc["variants"]
    assert sorted(m) == ["gan@0.5", "gan@balance", "real"]
    assert (m["gan@0.5"]["n_synthetic"], m["gan@balance"]["n_synthetic"]) == (4, 16)
    assert [m[v]["n_train"] for v in ("real", "gan@0.5", "gan@balance")] == [32, 36, 48]
    # the whole test split is scored, not one rank's share (planted fault: test images sharded
    # like training batches): 32 images in each confusion table, recalls in steps of 1/24, 1/8
    assert doc["headline"]["n_test"] == 32
    for name in m:
        confusion = pd.read_csv(project / f"plots/evaluate/confusion_{name}.csv")
        assert len(confusion) == 32 and sorted(confusion["actual"].value_counts()) == [8, 24]
    for res in m.values():
        assert 0.0 <= res["balanced_accuracy"] <= 1.0 and np.isfinite(res["roc_auc"])
        recall = res["recall"]
        for c, n in (("0", 24), ("1", 8)):
            assert recall[c] * n == pytest.approx(round(recall[c] * n), abs=1e-9), (c, recall)
        assert res["balanced_accuracy"] == pytest.approx((recall["0"] + recall["1"]) / 2)
    assert len(stage_runs(env, "evaluate")) == 1


# The real evaluate CNN on 2 processes against 1: BatchNorm normalises over each rank's half of the
# batch (SyncBatchNorm works on GPUs only) and every rank draws the same Dropout masks, so its
# weights after 6 steps differ from one process's by about 9% of their norm (0.093, measured on
# the 2-vCPU dev VM, torch 2.14.1); the bound leaves room for other platforms' float order.
REAL_CNN_BOUND = 0.2


def relative_difference(a: dict, b: dict) -> float:
    """||a - b|| / ||b|| over the trainable tensors (BatchNorm's running statistics left out)."""
    keys = [k for k in b if "running_" not in k and "num_batches" not in k]
    diff = torch.cat([(a[k].float() - b[k].float()).flatten() for k in keys])
    return float(diff.norm() / torch.cat([b[k].float().flatten() for k in keys]).norm())


@pytest.fixture(scope="module")
def two_process_fits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("torchrun_fit")
    env = {**stage_env(out), "PYTHONPATH": str(REPO)}
    result = torchrun(out, env, str(REPO / "tests/torchrun_fit.py"), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.slow  # torchrun
def test_two_processes_fit_the_classifier_as_one_process_does_with_the_same_global_batch(
    two_process_fits: Path,
) -> None:
    """Both ranks take their share of the same shuffled global batch and DDP averages the
    gradients, so 2 gloo processes end with the weights of 1 process, up to summation order.

    This holds exactly for a model whose outputs are per image (tests/torchrun_fit.py: no
    BatchNorm, no Dropout) and without augmentation; the real CNN is the next test.
    """
    one = fit(*make_images([14, 6])).state_dict()
    for rank in (0, 1):
        two = torch.load(two_process_fits / f"rank{rank}.pt", weights_only=True)
        assert two.keys() == one.keys()
        for name in one:
            torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-6,
                                       msg=lambda m: f"{name}: {m}")


@pytest.mark.slow  # torchrun
def test_the_real_evaluate_cnn_on_two_processes_shards_every_batch_and_stays_near_one(
    two_process_fits: Path,
) -> None:
    """The real evaluate CNN (BatchNorm, Dropout) through train_classifier on 2 processes:

    * sharding, exactly: at every step rank r trained on rows r, r+2, ... of the very global batch
      one process trains on (planted faults that fail here: both ranks on the same rows, a
      permutation drawn per rank, each rank on the whole global batch);
    * replicas: both ranks end with the same weights (fails if gradients are not averaged,
      e.g. the model not wrapped in DDP);
    * the documented difference from one process (REAL_CNN_BOUND): BatchNorm over each rank's
      half of the batch and shared Dropout masks make a different, equally valid sample of the
      training noise, not a bit-for-bit copy.
    """
    batches: list = []
    one = fit(*make_images([14, 6]), real=True, batches=batches).state_dict()
    one_x, one_y = torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches])
    ranks = [torch.load(two_process_fits / f"real_rank{r}.pt", weights_only=True)
             for r in (0, 1)]
    assert one_x.shape[:2] == (6, 8)  # 6 steps of a global batch of 8
    for r, got in enumerate(ranks):
        assert got["x"].shape[:2] == (6, 4)  # this rank's half
        torch.testing.assert_close(got["x"], one_x[:, r::2], rtol=0, atol=0)
        torch.testing.assert_close(got["y"], one_y[:, r::2], rtol=0, atol=0)
    zero, first = ranks[0]["state"], ranks[1]["state"]
    for name in zero:
        if "running_" not in name and "num_batches" not in name:
            torch.testing.assert_close(first[name], zero[name], rtol=0, atol=0,
                                       msg=lambda m: f"{name}: {m}")
    gap = relative_difference(zero, one)
    assert 0 < gap <= REAL_CNN_BOUND, gap
