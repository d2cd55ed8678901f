"""pipeline/report.py and stages/report.py: the verdict on worked numbers, the HTML page and its
figures on realistic fixtures (a binary and a 10-class run), and the stage's command line."""

from __future__ import annotations

import contextlib
import json
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import pipeline.report as report
import pipeline.tracking
from pipeline.artifacts import image_grid, save_png
from pipeline.errors import PipelineError
from pipeline.report import build_report, load_inputs, verdict

REPO = Path(__file__).resolve().parents[1]
BINARY = ["malignant", "benign"]


# --- fixtures: what the earlier stages write ------------------------------------------------------

def variant(ba: float, mr: float, *, auc: float | None = 0.9, ba_ci=None, mr_ci=None,
            vs: tuple | None = None, recall: dict | None = None, minority: int = 0,
            n_train: int = 546) -> dict[str, Any]:
    """One object of metrics/evaluate.json. vs = (ba_delta, ba_ci, mr_delta, mr_ci, auc_delta)."""
    m = {"accuracy": ba + 0.02, "balanced_accuracy": ba, "macro_f1": ba - 0.01, "roc_auc": auc,
         "minority_recall": mr, "minority_precision": 0.6, "recall": recall or {"0": mr, "1": 0.9},
         "balanced_accuracy_ci95": list(ba_ci or (ba - 0.05, ba + 0.05)),
         "minority_recall_ci95": list(mr_ci or (mr - 0.1, mr + 0.1)),
         "balanced_accuracy_seed_std": 0.01, "n_train": n_train, "n_seeds": 3,
         "minority_class": minority}
    if len(m["recall"]) == 2:  # binary: the minority class is the positive one
        m["sensitivity"], m["specificity"] = mr, m["recall"][str(1 - minority)]
    if vs is not None:
        m["vs_real"] = {
            "balanced_accuracy_delta": vs[0], "balanced_accuracy_delta_ci95": list(vs[1]),
            "minority_recall_delta": vs[2], "minority_recall_delta_ci95": list(vs[3]),
            "roc_auc_delta": vs[4]}
    return m


def binary_evaluate() -> dict[str, dict]:
    """gan wins both, clearly (paired intervals exclude 0); class_weight is the best non-GAN."""
    return {
        "real": variant(0.780, 0.550, auc=0.850, ba_ci=(0.72, 0.84), mr_ci=(0.40, 0.69)),
        "class_weight": variant(0.810, 0.680, auc=0.852,
                                vs=(0.030, (-0.010, 0.070), 0.130, (0.020, 0.250), 0.002)),
        "smote": variant(0.800, 0.640, auc=0.840,
                         vs=(0.020, (-0.020, 0.060), 0.090, (-0.030, 0.210), -0.010)),
        "gan": variant(0.840, 0.760, auc=0.870, ba_ci=(0.780, 0.890), mr_ci=(0.620, 0.880),
                       vs=(0.060, (0.020, 0.100), 0.210, (0.100, 0.330), 0.020), n_train=798),
    }


def write_outputs(root: Path, *, class_names: list[str], evaluate: dict[str, dict],
                  skip: tuple[str, ...] = (), headline: dict | None = None) -> Path:
    """metrics/ and plots/ as prepare, train_gan, generate and evaluate write them, in root."""
    k = len(class_names)
    rng = np.random.default_rng(0)
    # BreastMNIST-like (malignant the minority) or long-tailed digits (class 9 the minority)
    train = ({"0": 147, "1": 399} if k == 2 else
             {str(c): int(round(124 * 0.08 ** (c / (k - 1)))) for c in range(k)})
    test = {"0": 42, "1": 114} if k == 2 else {str(c): 27 for c in range(k)}
    top = max(train.values())
    docs = {
        "prepare.json": {"source": "digits", "n_classes": k, "class_names": class_names,
                         "counts": {"train": train, "val": test, "test": test},
                         "train_counts_before_imbalance": {str(c): top for c in range(k)},
                         "imbalance_ratio": top / min(train.values())},
        "train_gan.json": {"steps": 1500, "seconds": 76.3, "images_per_second": 1258.0,
                           "final_d_loss": 1.7168, "final_g_loss": 0.3925, "n_train": 484,
                           "n_classes": k, "device": "cpu", "fid_domain": 12.5,
                           "tstr_balanced_accuracy": 0.71, "trtr_balanced_accuracy": 0.84,
                           "best_step": 1000},
        "generate.json": {"target": "majority", "n_synthetic": sum(top - n for n in train.values()),
                          "counts_before": train,
                          "synthetic_per_class": {c: top - n for c, n in train.items()},
                          "counts_after": {c: top for c in train}, "checkpoint_sha256": "ab" * 32,
                          "memorization_rate": 0.0125, "acceptance_rate": 0.9877},
        "evaluate.json": {"selection": {k: headline[k] for k in ("gan", "baseline")}
                          | {"by": "val_balanced_accuracy"} if headline else {},
                          "headline": headline or {}, "variants": evaluate},
    }
    (root / "metrics").mkdir(parents=True)
    for name, doc in docs.items():
        if name not in skip:
            (root / "metrics" / name).write_text(json.dumps(doc, indent=2))
    plots = root / "plots"
    for sub in ("train_gan", "generate", "evaluate"):
        (plots / sub).mkdir(parents=True)
    steps = np.arange(50, 1501, 50)
    pd.DataFrame({"step": steps, "d_loss": 1.5 + rng.normal(0, 0.1, len(steps)),
                  "g_loss": 0.5 + rng.normal(0, 0.1, len(steps)),
                  "d_real": 0.3 + rng.normal(0, 0.05, len(steps)),
                  "d_fake": -0.3 + rng.normal(0, 0.05, len(steps))}).to_csv(
        plots / "train_gan/losses.csv", index=False)
    tiles = rng.integers(0, 256, (k, 17, 8, 8, 1), dtype=np.uint8)
    save_png(plots / "train_gan/samples.png", image_grid(list(tiles[:, :8]), scale=6))
    save_png(plots / "generate/real_vs_synthetic.png", image_grid(list(tiles), scale=6))
    save_png(plots / "generate/closest_pairs.png", image_grid([tiles[0, :8], tiles[-1, :8]], scale=6))
    save_png(plots / "generate/selection.png", image_grid(list(tiles), scale=6))
    minority = next(iter(evaluate.values())).get("minority_class", 0)
    actual = np.repeat(np.arange(k), [test[str(c)] for c in range(k)])
    for v in evaluate:
        if f"roc_{v}.csv" not in skip:
            fpr = np.linspace(0, 1, 20)
            pd.DataFrame({"fpr": fpr, "tpr": np.sqrt(fpr)}).to_csv(
                plots / f"evaluate/roc_{v}.csv", index=False)
        wrong = rng.random(len(actual)) < 0.15
        predicted = np.where(wrong, rng.integers(0, k, len(actual)), actual)
        predicted[(actual == minority) & (rng.random(len(actual)) < 0.3)] = 0 if minority else 1
        pd.DataFrame({"actual": actual, "predicted": predicted}).to_csv(
            plots / f"evaluate/confusion_{v}.csv", index=False)
    return root


def ten_class_evaluate() -> dict[str, dict]:
    recall = lambda low: {str(c): 1.0 - low * c / 9 for c in range(10)}  # noqa: E731
    return {
        "real": variant(0.951, 0.778, auc=0.9989, recall=recall(0.22), minority=9, n_train=483),
        "gan": variant(0.918, 0.556, auc=0.9979, recall=recall(0.44), minority=9, n_train=1240,
                       vs=(-0.033, (-0.060, -0.008), -0.222, (-0.410, -0.040), -0.001)),
    }


# --- the verdict ----------------------------------------------------------------------------------

def test_verdict_names_a_clear_gan_win_and_says_the_interval_excludes_zero() -> None:
    text = verdict(binary_evaluate(), class_names=BINARY, test_counts={"0": 42, "1": 114})
    assert "gan has the highest balanced accuracy (0.840), +0.060 vs real, and 0 lies outside " \
           "the 95% CI of the paired difference [+0.020, +0.100]" in text
    assert "gan has the highest recall of the minority class 'malignant' (0.760), +0.210 vs real" \
        in text
    # against the best variant without synthetic images, with the caveat of no paired interval
    assert "Against the best variant without synthetic images (class_weight), gan has balanced " \
           "accuracy 0.840 vs 0.810 (+0.030), minority recall 0.760 vs 0.680 (+0.080) and ROC " \
           "AUC 0.870 vs 0.852 (+0.018)" in text
    assert "did better than class_weight at no loss of AUC" in text
    assert "no paired interval of its own" in text
    assert "not distinguishable" not in text


def test_verdict_says_not_distinguishable_when_the_interval_contains_zero() -> None:
    ev = binary_evaluate()
    del ev["gan"]  # class_weight wins both, its balanced-accuracy interval straddles 0
    text = verdict(ev, class_names=BINARY, test_counts={"0": 42, "1": 114})
    assert "class_weight has the highest balanced accuracy (0.810), +0.030 vs real, but the 95% " \
           "CI of the paired difference [-0.010, +0.070] contains 0: not distinguishable from " \
           "no balancing at this test-set size (156 test images, 42 of the minority class)" in text
    # its minority-recall gain is outside the interval
    assert "+0.130 vs real, and 0 lies outside the 95% CI of the paired difference " \
           "[+0.020, +0.250]" in text
    assert "No GAN variant was evaluated" in text


def headline_of(ba: float, ci: tuple[float, float], *, auc: float = 0.0) -> dict[str, Any]:
    return {"gan": "gan", "baseline": "class_weight", "balanced_accuracy_delta": ba,
            "balanced_accuracy_delta_ci95": list(ci), "minority_recall_delta": 0.08,
            "minority_recall_delta_ci95": [-0.05, 0.2], "roc_auc_delta": auc, "n_seeds": 5,
            "n_test": 156, "balanced_accuracy_delta_ci95_width": ci[1] - ci[0],
            "balanced_accuracy_delta_ci95_width_test_only": 0.9 * (ci[1] - ci[0]),
            "resolves_2_points": ci[1] - ci[0] <= 0.04}


def test_verdict_leads_with_the_validation_chosen_pair_and_its_paired_interval() -> None:
    ev, counts = binary_evaluate(), {"0": 42, "1": 114}
    text = verdict(ev, class_names=BINARY, test_counts=counts,
                   headline=headline_of(0.03, (-0.02, 0.08)))
    assert text.startswith("Chosen on the validation split (the test split played no part): "
                           "gan, the best of 1 GAN configuration, and class_weight")
    assert "balanced accuracy +0.030 (paired 95% CI [-0.020, +0.080])" in text
    assert "not distinguishable from class_weight at this test-set size (156 test images, " \
           "42 of the minority class)" in text
    assert "0.100 wide over 5 seeds and 156 test images: it cannot resolve a 2-point " \
           "difference; the test set alone accounts for a width of 0.090, so more seeds cannot " \
           "fix this: only a larger test split can." in text
    assert "Among all variants on the test split:" in text  # the descriptive part follows
    win = verdict(ev, class_names=BINARY, test_counts=counts,
                  headline=headline_of(0.03, (0.01, 0.045), auc=-0.01))
    assert "The synthetic images helped" in win and "ROC AUC is lower (-0.010)" in win
    assert "0.035 wide" in win and "it can resolve a 2-point difference." in win
    narrow = verdict(ev, class_names=BINARY, headline=headline_of(-0.008, (-0.023, 0.008)))
    assert "not distinguishable from class_weight, and the interval is narrow: a gain larger " \
           "than +0.008 or a loss larger than -0.023 is unlikely." in narrow
    seeds_help = verdict(ev, class_names=BINARY, headline={
        **headline_of(0.03, (-0.01, 0.05)), "balanced_accuracy_delta_ci95_width_test_only": 0.03})
    assert "accounts for 0.030, so more seeds (evaluate.seeds) would narrow it." in seeds_help
    loss = verdict(ev, class_names=BINARY, headline=headline_of(-0.05, (-0.09, -0.01)))
    assert "did worse than class_weight, beyond test-set and seed noise" in loss


def test_the_page_names_the_selection_and_shows_the_selection_grid(tmp_path: Path) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate(),
                         headline=headline_of(0.03, (-0.02, 0.08)))
    inputs = load_inputs(root / "metrics", root / "plots")
    assert inputs.selection["gan"] == "gan" and inputs.headline["n_test"] == 156
    text = build_report(inputs, out_dir=root / "reports").read_text()
    assert "Chosen by <code>val_balanced_accuracy</code> on the validation split: GAN " \
           "configuration <b>gan</b>, baseline <b>class_weight</b>" in text
    assert 'src="figures/selection.png"' in text


def test_verdict_says_when_gan_is_worse_and_real_wins() -> None:
    text = verdict(ten_class_evaluate(), class_names=[str(c) for c in range(10)])
    assert "real has the highest balanced accuracy (0.951): no balancing method beats training " \
           "on the imbalanced data as it is" in text
    assert "The best of them, gan, is -0.033 vs real, and the 95% CI of the paired difference " \
           "[-0.060, -0.008] lies below 0" in text
    assert "recall of the minority class '9' (0.778)" in text
    assert "On these point estimates the synthetic images did not beat real. The paired 95% CI " \
           "of the balanced-accuracy difference, [-0.060, -0.008], excludes 0." in text
    assert "did better" not in text


def test_verdict_reports_a_mixed_result_and_a_lower_auc() -> None:
    ev = {"real": variant(0.80, 0.50, auc=0.90),
          "gan": variant(0.79, 0.70, auc=0.88, vs=(-0.01, (-0.04, 0.02), 0.2, (0.05, 0.35), -0.02))}
    text = verdict(ev, class_names=BINARY)
    assert "A mixed result: gan is better on minority recall and worse on balanced accuracy " \
           "than real." in text
    ev["gan"]["balanced_accuracy"] = 0.85
    assert "did better than real but at a lower AUC (-0.020). The paired 95% CI of the " \
           "balanced-accuracy difference, [-0.040, +0.020], contains 0: within test-set noise." \
           in verdict(ev, class_names=BINARY)
    ev["gan"]["minority_recall"] = 0.40  # better overall, worse on the class that matters
    assert "A mixed result: gan is better on balanced accuracy and worse on minority recall " \
           "than real." in verdict(ev, class_names=BINARY)


def test_verdict_handles_an_undefined_auc() -> None:
    ev = binary_evaluate()
    ev["gan"]["roc_auc"] = None
    ev["class_weight"]["roc_auc"] = float("nan")
    text = verdict(ev, class_names=BINARY)
    assert "ROC AUC undefined for gan and class_weight" in text
    assert "did better than class_weight." in text  # no claim about AUC either way
    assert "AUC" not in text.split("did better")[1]


def test_verdict_with_one_variant_no_real_or_no_intervals() -> None:
    one = verdict({"real": variant(0.78, 0.55, ba_ci=(0.72, 0.84))}, class_names=BINARY)
    assert one.startswith("Only one variant (real) was evaluated: balanced accuracy 0.780 "
                          "(95% CI [0.720, 0.840])")
    assert "cannot say whether balancing helps" in one
    ev = binary_evaluate()
    del ev["real"]
    text = verdict(ev, class_names=BINARY)
    assert "gan has the highest balanced accuracy (0.840); there is no real variant" in text
    no_ci = {"real": variant(0.78, 0.55), "gan": variant(0.84, 0.76)}  # evaluate.bootstrap: 0
    assert "+0.060 vs real (no interval recorded" in verdict(no_ci, class_names=BINARY)
    only_gan = verdict({"gan": variant(0.8, 0.5), "gan_class_weight": variant(0.8, 0.6)},
                       class_names=BINARY)
    assert "gan and gan_class_weight tie for the highest balanced accuracy (0.800)" in only_gan
    assert "Only GAN variants were evaluated" in only_gan


# --- the page -------------------------------------------------------------------------------------

def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def image_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


@pytest.fixture(scope="module")
def binary_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = write_outputs(tmp_path_factory.mktemp("binary"), class_names=BINARY,
                         evaluate=binary_evaluate(), skip=("roc_smote.csv",))
    # as MLflow returns it: newest run first, flat scalar metrics
    table = pd.DataFrame({"variant": ["gan", "real"], "balanced_accuracy": [0.84, 0.78],
                          "balanced_accuracy_ci95_lo": [0.7812, 0.72], "n_train": [798.0, 546.0]})
    page = build_report(load_inputs(root / "metrics", root / "plots"), out_dir=root / "reports",
                        mlflow_table=table)
    return page, page.read_text()


def test_page_shows_the_verdict_and_every_variant_with_formatted_numbers(binary_report) -> None:
    page, text = binary_report
    assert page.name == "index.html"
    assert '<p class="verdict">gan has the highest balanced accuracy (0.840)' in text
    for v in binary_evaluate():
        assert f"<th>{v}</th>" in text
    # value, bold as the column's best, with its interval beneath
    assert '<td class="num"><b>0.840</b><br><span class="ci">[0.780, 0.890]</span></td>' in text
    assert '<td class="num">0.780<br><span class="ci">[0.720, 0.840]</span></td>' in text
    # paired differences: green where the interval is above 0, plain where it contains 0
    assert ('<td class="num up"><b>+0.060</b><br><span class="ci">[+0.020, +0.100]</span></td>'
            in text)
    assert '<td class="num">+0.030<br><span class="ci">[-0.010, +0.070]</span></td>' in text
    # dataset table: test counts per class; GAN metrics incl. keys added later (fid_domain)
    assert "<tr><th>malignant</th>" in text and ">42</td>" in text
    assert "<th>fid_domain</th><td>12.5</td>" in text
    assert "<th>images_per_second</th><td>1,258</td>" in text
    # a column where every variant ties is not bold
    assert "<b>0.600</b>" not in text and '<td class="num">0.600</td>' in text
    # the MLflow table, transposed: one row per metric, one column per variant in file order
    assert "<tr><th>metric</th><th>real</th><th>gan</th></tr>" in text
    assert "<tr><th>balanced_accuracy_ci95_lo</th><td class=\"num\">0.720</td>" \
           "<td class=\"num\">0.781</td></tr>" in text
    assert '<tr><th>n_train</th><td class="num">546</td><td class="num">798</td></tr>' in text
    assert "MLflow table unavailable" not in text
    assert "How to read this" in text and "mean over 3 classifier seeds" in text


def test_every_image_on_the_page_is_a_png_of_sensible_size(binary_report) -> None:
    page, text = binary_report
    sources = image_sources(text)
    assert {"figures/class_counts.png", "figures/gan_losses.png", "figures/recall.png",
            "figures/roc.png", "figures/balanced_accuracy.png", "figures/confusion.png",
            "figures/real_vs_synthetic.png", "figures/samples.png",
            "figures/closest_pairs.png", "figures/selection.png"} == set(sources)
    for src in sources:
        width, height = png_size(page.parent / src)
        assert 300 <= width <= 2000 and 150 <= height <= 2000, (src, width, height)
    # the stages' own grids come along unchanged
    # 2 rows of 17 tiles of 8 px + 1 px padding, scaled 6x
    assert png_size(page.parent / "figures/real_vs_synthetic_original.png") == (924, 114)
    assert not list(page.parent.parent.glob(".reports.*"))  # no temporary folder left behind


def test_quality_and_privacy_numbers_are_shown(binary_report) -> None:
    _, text = binary_report
    section = text.split("Synthetic image quality and privacy", 1)[1].split("<h2", 1)[0]
    assert "FID in the in-project feature space" in section
    assert "<td>0.71</td>" in section and "<td>0.84</td>" in section and "<td>1000</td>" in section
    assert "memorization rate: share of drawn synthetic images" in section
    assert "<td>0.0125</td>" in section and "<td>0.9877</td>" in section
    assert "figures/closest_pairs.png" in section


def test_a_variant_without_its_roc_csv_is_listed_not_fatal(binary_report) -> None:
    _, text = binary_report
    assert "Inputs not found" in text
    assert re.search(r"<li><code>[^<]*evaluate/roc_smote\.csv</code></li>", text)


def test_ten_classes_without_mlflow(tmp_path: Path) -> None:
    names = [str(c) for c in range(10)]
    root = write_outputs(tmp_path, class_names=names, evaluate=ten_class_evaluate())
    inputs = load_inputs(root / "metrics", root / "plots")
    page = build_report(inputs, out_dir=root / "reports", mlflow_table=pd.DataFrame(),
                        mlflow_note="tracking not available")
    text = page.read_text()
    assert "MLflow table unavailable (tracking not available)" in text
    assert "Inputs not found" not in text
    assert "<tr><th>9 (minority)</th>" in text
    # class 9's recall: real 0.778, gan 0.556; real's is the best, so bold
    row = re.search(r"<tr><th>9 \(minority\)</th>(.*?)</tr>", text).group(1)
    assert re.findall(r"<td[^>]*>(.*?)</td>", row) == ["27", "<b>0.780</b>", "0.560"]
    for src in image_sources(text):
        assert (page.parent / src).stat().st_size > 5000
    width, height = png_size(page.parent / "figures/confusion.png")
    assert width > height > 300  # two 10x10 matrices side by side


def test_confusion_matrix_counts() -> None:
    frame = pd.DataFrame({"actual": [0, 0, 1, 1, 1, 2], "predicted": [0, 1, 1, 1, 2, 2]})
    np.testing.assert_array_equal(report.confusion_matrix(frame, 3),
                                  [[1, 1, 0], [0, 2, 1], [0, 0, 1]])


def test_text_from_the_inputs_is_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "_save_figures", lambda *args: {})  # the HTML is what matters
    names = ["<b>malignant</b>", "benign & normal"]
    root = write_outputs(tmp_path, class_names=names, evaluate=binary_evaluate())
    text = build_report(load_inputs(root / "metrics", root / "plots"),
                        out_dir=root / "reports").read_text()
    assert "&lt;b&gt;malignant&lt;/b&gt;" in text and "benign &amp; normal" in text
    assert "<b>malignant</b>" not in text


def test_a_failed_build_keeps_the_previous_report(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate())
    (root / "reports").mkdir()
    (root / "reports/index.html").write_text("previous")
    inputs = load_inputs(root / "metrics", root / "plots")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "plot_class_counts", broken)
    with pytest.raises(RuntimeError):
        build_report(inputs, out_dir=root / "reports")
    assert [p.name for p in (root / "reports").iterdir()] == ["index.html"]
    assert (root / "reports/index.html").read_text() == "previous"
    assert sorted(p.name for p in root.iterdir()) == ["metrics", "plots", "reports"]


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda root: (root / "metrics/evaluate.json").write_text("{not json"), "not valid JSON"),
    (lambda root: (root / "metrics/evaluate.json").write_text("{}"), "no variants in it"),
    (lambda root: (root / "metrics/evaluate.json").write_text(
        '{"variants": {"gan": {"accuracy": 1}}}'),
     "variant 'gan' has no balanced_accuracy"),
    (lambda root: (root / "plots/evaluate/roc_gan.csv").write_text("a,b\n1,2\n"),
     "roc_gan.csv: missing column(s) fpr, tpr"),
    (lambda root: (root / "metrics/prepare.json").unlink(),
     "prepare.json: not found; run the stage that writes it (`dvc repro prepare`)"),
])
def test_bad_inputs_raise_one_pipeline_error(tmp_path: Path, change, fragment: str) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate())
    change(root)
    with pytest.raises(PipelineError, match=re.escape(fragment)):
        load_inputs(root / "metrics", root / "plots")


# --- the stage through its command line (in-process, MLflow faked) --------------------------------

ARGS = ["--metrics", "metrics", "--plots", "plots", "--out", "reports"]


class FakeRun:
    def __init__(self) -> None:
        self.artifacts: list[tuple[str, str | None]] = []

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        assert Path(path).is_file()
        self.artifacts.append((Path(path).name, artifact_path))


@pytest.fixture
def fake_tracking(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """stage_run and variant_table replaced: records what the stage logs and which digest it
    asked for."""
    seen: dict[str, Any] = {"runs": [], "table": pd.DataFrame()}

    @contextlib.contextmanager
    def stage_run(stage: str, *, params_digest: str, root: str | Path = "."):
        run = FakeRun()
        seen["runs"].append((stage, params_digest, run))
        yield run

    def variant_table(params_digest: str, root: str | Path = ".") -> pd.DataFrame:
        seen["digest"] = params_digest
        if isinstance(seen["table"], Exception):
            raise seen["table"]
        return seen["table"]

    monkeypatch.setattr(pipeline.tracking, "stage_run", stage_run)
    monkeypatch.setattr(pipeline.tracking, "variant_table", variant_table, raising=False)
    return seen


def run_stage_here(root: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    (root / "params.yaml").write_text("seed: 0\n")
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["stages/report.py", *ARGS])
    code = 0
    try:
        runpy.run_path(str(REPO / "stages/report.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stage_writes_the_report_and_logs_it(
    tmp_path: Path, fake_tracking: dict, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate())
    fake_tracking["table"] = pd.DataFrame({"variant": ["gan"], "minority_recall": [0.7654]})
    code, out, err = run_stage_here(root, monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert out == "report: wrote reports/index.html\n"
    (stage, digest, run), = fake_tracking["runs"]
    assert stage == "report" and digest == fake_tracking["digest"] and len(digest) == 64
    assert ("index.html", None) in run.artifacts
    logged = sorted(name for name, where in run.artifacts if where == "figures")
    assert logged == sorted(p.name for p in (root / "reports/figures").glob("*.png"))
    assert len(logged) == 14  # 10 figures + the 4 original grids
    assert '<tr><th>minority_recall</th><td class="num">0.765</td></tr>' in \
        (root / "reports/index.html").read_text()


def test_stage_falls_back_to_evaluate_json_when_mlflow_cannot_answer(
    tmp_path: Path, fake_tracking: dict, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate())
    monkeypatch.setattr(report, "_save_figures", lambda *args: {})  # figures: tested above
    fake_tracking["table"] = ConnectionError("server down\nmore detail")
    code, out, _ = run_stage_here(root, monkeypatch, capsys)
    assert code == 0
    assert "MLflow query failed: ConnectionError: server down" in out
    text = (root / "reports/index.html").read_text()
    assert "MLflow table unavailable (MLflow query failed: ConnectionError: server down)" in text
    assert '<p class="verdict">gan has the highest balanced accuracy' in text


def test_stage_without_evaluate_json_fails_with_one_line(
    tmp_path: Path, fake_tracking: dict, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate(),
                         skip=("evaluate.json",))
    code, out, err = run_stage_here(root, monkeypatch, capsys)
    assert code == 1 and out == ""
    assert err == ("report: error: metrics/evaluate.json: not found; run the stage that writes it "
                   "(`dvc repro evaluate`)\n")
    assert not (root / "reports").exists()
    assert fake_tracking["runs"] == []  # failed before opening an MLflow run


def test_the_page_says_what_prepare_did_to_the_data_before_the_verdict(tmp_path: Path) -> None:
    root = write_outputs(tmp_path / "run", class_names=BINARY, evaluate=binary_evaluate())
    prepare = json.loads((root / "metrics/prepare.json").read_text())
    prepare.update(
        image_shape=[8, 8, 1], resized={"count": 780, "from": {"28x28": 780}, "to": "8x8"},
        simulated_imbalance={"method": "long_tail", "removed": {"0": 0, "1": 367}, "count": 367,
                             "of": 546},
        data_changes=[("Resized 780 images (780 at 28x28) to 8x8 (prepare.image_size: 8; null "
                       "keeps the native size)."), "Removed 367 of 546 training images <b>."])
    (root / "metrics/prepare.json").write_text(json.dumps(prepare))
    page = build_report(load_inputs(root / "metrics", root / "plots"),
                        out_dir=tmp_path / "reports").read_text()
    glance = page.index('<p class="glance">')
    notice = page.index('<div class="notice">')
    assert glance < notice < page.index('<p class="verdict">')
    assert ("<li>Resized 780 images (780 at 28x28) to 8x8 (prepare.image_size: 8; null keeps the "
            "native size).</li><li>Removed 367 of 546 training images &lt;b&gt;.</li>") in page
    assert ("training images per class: malignant: 147, benign: 399; test split 156 images; "
            "images 8×8 px.") in page
    assert "<th>resized</th><td>780 images to 8x8 px</td>" in page
    assert "<th>removed to simulate imbalance</th><td>367 of 546 training images (long_tail)" \
        in page
    # the variants the verdict names are explained in words next to it
    assert "<b>smote</b>: SMOTE: new rare-class images interpolated between real ones" in page
    assert "oversample</b>" not in page  # only the variants this run has


def test_no_notice_when_prepare_changed_nothing(tmp_path: Path) -> None:
    root = write_outputs(tmp_path / "run", class_names=BINARY, evaluate=binary_evaluate())
    page = build_report(load_inputs(root / "metrics", root / "plots"),
                        out_dir=tmp_path / "reports").read_text()
    assert 'class="notice"' not in page and '<p class="glance">' in page


def test_the_legend_explains_each_variant_family_once() -> None:
    ev = {"real": variant(0.8, 0.6), "gan@0.5": {**variant(0.81, 0.6), "variant": "gan"},
          "gan@balance": {**variant(0.8, 0.62), "variant": "gan"},
          "gan_pretrain": {**variant(0.8, 0.6), "variant": "gan_pretrain"}}
    legend = report._legend_html(ev)
    assert legend.count("<b>gan</b>") == 1 and "@r adds r times each rare class" in legend
    assert "<b>gan_pretrain</b>: first trained on synthetic images only" in legend
    assert legend.index("<b>real</b>") < legend.index("<b>gan</b>") < legend.index("gan_pretrain")

