"""pipeline/report and stages/report.py: the verdict on worked numbers, the HTML page and its
figures on realistic fixtures (a binary and a 10-class run), and the stage's command line.
Page checks read the visible text and the tables' cells, not the markup."""

from __future__ import annotations

import contextlib
import json
import re
import runpy
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import pipeline.report.figures
import pipeline.report.page
import pipeline.tracking
from pipeline.artifacts import image_grid, save_png
from pipeline.errors import PipelineError
from pipeline.report import build_report, load_inputs, plot_confusions, plot_roc, verdict

REPO = Path(__file__).resolve().parents[1]
BINARY = ["malignant", "benign"]


# --- fixtures: what the earlier stages write ------------------------------------------------------

def variant(ba: float, mr: float, *, auc: float | None = 0.9, ba_ci=None, mr_ci=None,
            vs: tuple | None = None, recall: dict | None = None, minority: int = 0,
            n_train: int = 546, synthetic: bool = False) -> dict[str, Any]:
    """One object of metrics/evaluate.json. vs = (ba_delta, ba_ci, mr_delta, mr_ci, auc_delta)."""
    m = {"accuracy": ba + 0.02, "balanced_accuracy": ba, "macro_f1": ba - 0.01, "roc_auc": auc,
         "minority_recall": mr, "minority_precision": 0.6, "recall": recall or {"0": mr, "1": 0.9},
         "balanced_accuracy_ci95": list(ba_ci or (ba - 0.05, ba + 0.05)),
         "minority_recall_ci95": list(mr_ci or (mr - 0.1, mr + 0.1)),
         "balanced_accuracy_seed_std": 0.01, "n_train": n_train, "n_seeds": 3,
         "minority_class": minority, "synthetic": synthetic}
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
                       vs=(0.060, (0.020, 0.100), 0.210, (0.100, 0.330), 0.020), n_train=798,
                       synthetic=True),
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
                       vs=(-0.033, (-0.060, -0.008), -0.222, (-0.410, -0.040), -0.001),
                       synthetic=True),
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
    shown = visible(text)
    assert "Chosen by val_balanced_accuracy on the validation split: GAN configuration gan, " \
           "baseline class_weight. The test columns below are reported, never used to choose." \
        in shown
    # the page's summary is the verdict, led by the validation-chosen pair
    assert "Summary " + verdict(binary_evaluate(), class_names=BINARY,
                                test_counts={"0": 42, "1": 114},
                                headline=headline_of(0.03, (-0.02, 0.08))) in shown
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
          "gan": variant(0.79, 0.70, auc=0.88, vs=(-0.01, (-0.04, 0.02), 0.2, (0.05, 0.35), -0.02),
                         synthetic=True)}
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
    only_gan = verdict({"gan": variant(0.8, 0.5, synthetic=True),
                        "gan_class_weight": variant(0.8, 0.6, synthetic=True)},
                       class_names=BINARY)
    assert "gan and gan_class_weight tie for the highest balanced accuracy (0.800)" in only_gan
    assert "Only GAN variants were evaluated" in only_gan


def test_the_verdict_groups_variants_by_what_evaluate_recorded_not_by_their_names() -> None:
    ev = {"real": variant(0.80, 0.50), "mixup": variant(0.84, 0.70, synthetic=True),
          "gan_lookalike": variant(0.82, 0.60)}
    text = verdict(ev, class_names=BINARY)
    assert "Against the best variant without synthetic images (gan_lookalike), mixup has " \
           "balanced accuracy 0.840 vs 0.820 (+0.020)" in text
    chosen = verdict(ev, class_names=BINARY, headline={
        **headline_of(0.02, (-0.02, 0.06)), "gan": "mixup", "baseline": "gan_lookalike"})
    assert "mixup, the best of 1 GAN configuration, and gan_lookalike" in chosen


# --- the page -------------------------------------------------------------------------------------

BLOCKS = {"h1", "h2", "h3", "p", "div", "ul", "li", "section", "figure", "figcaption", "table",
          "tr", "td", "th", "br"}


class _PageReader(HTMLParser):
    """The page as a reader sees it: its text (blocks apart), and each table as rows of cell
    texts (bold text as *x*, a line break as a space)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.skip = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in BLOCKS:
            self.text.append(" ")
        if tag in ("title", "style", "script"):
            self.skip = True
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "b" and self.cell is not None:
            self.cell.append("*")
        elif tag == "br" and self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCKS:
            self.text.append(" ")
        if tag in ("title", "style", "script"):
            self.skip = False
        elif tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "b" and self.cell is not None:
            self.cell.append("*")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.text.append(data)
            if self.cell is not None:
                self.cell.append(data)


def visible(page: str) -> str:
    """The page's text with whitespace runs collapsed."""
    reader = _PageReader()
    reader.feed(page)
    return " ".join("".join(reader.text).split())


def table(page: str, corner: str) -> dict[str, list[str]]:
    """The table whose top-left cell is `corner`: first cell of a row -> the row's other cells."""
    reader = _PageReader()
    reader.feed(page)
    for rows in reader.tables:
        if rows and rows[0] and rows[0][0] == corner:
            return {row[0]: row[1:] for row in rows}
    raise AssertionError(f"no table headed {corner!r}")


def kv(page: str) -> dict[str, str]:
    """Every key-value row of the page's two-column tables."""
    reader = _PageReader()
    reader.feed(page)
    return {row[0]: row[1] for rows in reader.tables for row in rows if len(row) == 2}


def cell(rows: dict[str, list[str]], row: str, column: str) -> str:
    header = next(iter(rows.values()))
    return rows[row][header.index(column)]


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
    shown = visible(text)
    assert "Summary " + verdict(binary_evaluate(), class_names=BINARY,
                                test_counts={"0": 42, "1": 114}) in shown
    variants = table(text, "variant")
    assert list(variants)[1:] == list(binary_evaluate())
    # value, bold as the column's best, with its interval beneath
    assert cell(variants, "gan", "balanced accuracy") == "*0.840* [0.780, 0.890]"
    assert cell(variants, "real", "balanced accuracy") == "0.780 [0.720, 0.840]"
    assert cell(variants, "gan", "training images") == "798"
    # a column where every variant ties is not bold
    assert [cell(variants, v, "minority precision") for v in binary_evaluate()] == ["0.600"] * 4
    # paired differences against real, with their paired intervals
    deltas = table(text, "variant vs real")
    assert list(deltas)[1:] == ["class_weight", "smote", "gan"]
    assert cell(deltas, "gan", "Δ balanced accuracy") == "*+0.060* [+0.020, +0.100]"
    assert cell(deltas, "class_weight", "Δ balanced accuracy") == "+0.030 [-0.010, +0.070]"
    assert cell(deltas, "smote", "Δ ROC AUC") == "-0.010"
    # dataset table: counts per class; GAN metrics incl. keys added later (fid_domain)
    dataset = table(text, "class")
    assert cell(dataset, "malignant", "test") == "42"
    assert cell(dataset, "benign", "synthetic added") == "0"
    gan_training = kv(section(text, "GAN training"))
    assert gan_training["fid_domain"] == "12.5" and gan_training["images_per_second"] == "1,258"
    assert gan_training["device"] == "cpu" and gan_training["steps"] == "1500"
    # the MLflow table, transposed: one row per metric, one column per variant in file order
    mlflow = table(text, "metric")
    assert mlflow["metric"] == ["real", "gan"]
    assert mlflow["balanced_accuracy_ci95_lo"] == ["0.720", "0.781"]
    assert mlflow["n_train"] == ["546", "798"]
    assert "MLflow table unavailable" not in shown
    assert "How to read this Every number is the mean over 3 classifier seeds" in shown


def section(page: str, title: str) -> str:
    """The HTML of one <h2> section of the page."""
    return page.split(f"<h2>{title}</h2>", 1)[1].split("<h2", 1)[0]


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
    quality = section(text, "Synthetic image quality and privacy")
    rows = kv(quality)
    assert rows["FID in the in-project feature space (lower is better)"] == "12.5"
    assert rows["TSTR: classifier trained on synthetic only, balanced accuracy on the real "
                "validation split"] == "0.71"
    assert rows["the same classifier trained on the real training split"] == "0.84"
    assert rows["generator kept: the training step with the lowest FID"] == "1000"
    assert rows["memorization rate: share of drawn synthetic images closer to a training image "
                "than 99% of real validation images are"] == "0.0125"
    assert rows["acceptance rate of the memorization filter and quality gate"] == "0.9877"
    assert "KID in the same space (lower is better; ~0 = indistinguishable)" not in rows
    assert "figures/closest_pairs.png" in quality


def test_a_variant_without_its_roc_csv_is_listed_not_fatal(binary_report) -> None:
    _, text = binary_report
    missing = visible(section(text, "Inputs not found")).split()
    assert len(missing) == 1 and missing[0].endswith("plots/evaluate/roc_smote.csv")
    roc = visible(section(text, "ROC of the minority class"))
    assert roc.startswith("The minority class against all others.")  # the figure is there


def test_ten_classes_without_mlflow(tmp_path: Path) -> None:
    names = [str(c) for c in range(10)]
    root = write_outputs(tmp_path, class_names=names, evaluate=ten_class_evaluate())
    inputs = load_inputs(root / "metrics", root / "plots")
    page = build_report(inputs, out_dir=root / "reports", mlflow_table=pd.DataFrame(),
                        mlflow_note="tracking not available")
    text = page.read_text()
    assert "MLflow table unavailable (tracking not available)" in visible(text)
    assert "Inputs not found" not in text
    # class 9's recall: real 0.778, gan 0.556; real's is the best, so bold
    recall = table(section(text, "Per-class recall"), "class")
    assert recall["9 (minority)"] == ["27", "*0.780*", "0.560"]
    for src in image_sources(text):
        assert (page.parent / src).stat().st_size > 5000
    width, height = png_size(page.parent / "figures/confusion.png")
    assert width > height > 300  # two 10x10 matrices side by side


def test_confusion_figure_shows_the_counts_per_actual_and_predicted_class() -> None:
    # the last row's class 3 is not one of the three classes: left out
    frame = pd.DataFrame({"actual": [0, 0, 1, 1, 1, 2, 3], "predicted": [0, 1, 1, 1, 2, 2, 0]})
    ax = plot_confusions({"gan": frame}, ["a", "b", "c"]).axes[0]
    cells = {(int(t.get_position()[1]), int(t.get_position()[0])): int(t.get_text())
             for t in ax.texts}  # (actual, predicted) -> count
    counts = [[cells[(i, j)] for j in range(3)] for i in range(3)]
    assert counts == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    share = ax.get_images()[0].get_array()  # colour: share of the actual class
    np.testing.assert_allclose(share[1], [0, 2 / 3, 1 / 3])


def test_roc_legend_gives_the_area_under_each_curve() -> None:
    square = pd.DataFrame({"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 1.0, 1.0]})  # area 0.75
    chance = pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]})
    ax = plot_roc({"gan": square, "real": chance}, minority_name="'malignant'").axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["gan (AUC 0.750)", "real (AUC 0.500)", "chance"]
    assert ax.get_title() == "ROC: minority class 'malignant' vs rest"


def test_text_from_the_inputs_is_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.report.page, "save_figures", lambda *args: {})  # the HTML is what matters
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

    monkeypatch.setattr(pipeline.report.figures, "plot_class_counts", broken)
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
    (lambda root: (root / "metrics/evaluate.json").write_text(
        '{"variants": {"gan": {"balanced_accuracy": 0.8}}}'),
     "variant 'gan' does not say whether it used synthetic images"),
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
    assert table((root / "reports/index.html").read_text(), "metric")["minority_recall"] == \
        ["0.765"]


def test_stage_falls_back_to_evaluate_json_when_mlflow_cannot_answer(
    tmp_path: Path, fake_tracking: dict, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    root = write_outputs(tmp_path, class_names=BINARY, evaluate=binary_evaluate())
    monkeypatch.setattr(pipeline.report.page, "save_figures", lambda *args: {})  # tested above
    fake_tracking["table"] = ConnectionError("server down\nmore detail")
    code, out, _ = run_stage_here(root, monkeypatch, capsys)
    assert code == 0
    assert "MLflow query failed: ConnectionError: server down" in out
    text = visible((root / "reports/index.html").read_text())
    assert "MLflow table unavailable (MLflow query failed: ConnectionError: server down)" in text
    assert "Summary gan has the highest balanced accuracy" in text


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


def test_the_page_says_what_prepare_did_to_the_data_before_the_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.report.page, "save_figures", lambda *args: {})
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
    # first what the data is, then what the pipeline did to it, then the verdict
    assert visible(page).startswith(
        "Does GAN augmentation help? Pipeline report "
        "Data: digits, 2 classes; training images per class: malignant: 147, benign: 399; "
        "test split 156 images; images 8×8 px. "
        "The pipeline changed the data before training "
        "Resized 780 images (780 at 28x28) to 8x8 (prepare.image_size: 8; null keeps the native "
        "size). Removed 367 of 546 training images <b>. "
        "Summary gan has the highest balanced accuracy (0.840)")
    assert "Removed 367 of 546 training images &lt;b&gt;." in page  # escaped, shown as written
    facts = kv(section(page, "Dataset and class balance"))
    assert facts["resized"] == "780 images to 8x8 px"
    assert facts["removed to simulate imbalance"] == "367 of 546 training images (long_tail)"
    assert facts["imbalance ratio (train, largest / smallest)"] == "2.714"  # 399 / 147


def test_no_notice_when_prepare_changed_nothing(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.report.page, "save_figures", lambda *args: {})
    root = write_outputs(tmp_path / "run", class_names=BINARY, evaluate=binary_evaluate())
    shown = visible(build_report(load_inputs(root / "metrics", root / "plots"),
                                 out_dir=tmp_path / "reports").read_text())
    assert "training images per class: malignant: 147, benign: 399" in shown
    assert "changed the data" not in shown


def test_the_legend_explains_each_variant_family_once(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.report.page, "save_figures", lambda *args: {})
    ev = {"real": {**variant(0.8, 0.6), "variant": "real"},
          "gan@0.5": {**variant(0.81, 0.6, synthetic=True), "variant": "gan"},
          "gan@balance": {**variant(0.8, 0.62, synthetic=True), "variant": "gan"},
          "gan_pretrain": {**variant(0.8, 0.6, synthetic=True), "variant": "gan_pretrain"}}
    root = write_outputs(tmp_path / "run", class_names=BINARY, evaluate=ev)
    shown = visible(build_report(load_inputs(root / "metrics", root / "plots"),
                                 out_dir=tmp_path / "reports").read_text())
    legend = shown.split("Summary ", 1)[1].split(" Not available", 1)[0]  # no figures here
    assert legend.endswith(
        "real: the training images as they are, no balancing; "
        "gan: real images plus the best-scored GAN-generated (synthetic) ones; @r adds r times "
        "each rare class's count, @balance fills it up to the largest class; "
        "gan_pretrain: first trained on synthetic images only, then on the real ones.")
    assert "smote:" not in legend  # only the families this run has
