"""pipeline/report: the HTML page and its figures on realistic fixtures (a binary and a 10-class
run), read through its visible text and table cells rather than its markup; bad inputs."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from report_fixtures import (
    BINARY, REPO, binary_evaluate, cell, headline_of, image_sources, kv, png_size, section, table,
    ten_class_evaluate, variant, visible, write_outputs,
)

import pipeline.report.figures
import pipeline.report.page
from pipeline.errors import PipelineError
from pipeline.report import build_report, load_inputs, plot_confusions, plot_roc, verdict


@pytest.fixture(scope="module")
def binary_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = write_outputs(tmp_path_factory.mktemp("binary"), class_names=BINARY,
                         evaluate=binary_evaluate(), skip=("roc_smote.csv",))
    # as MLflow returns it: newest run first, flat scalar metrics
    mlflow = pd.DataFrame({"variant": ["gan", "real"], "balanced_accuracy": [0.84, 0.78],
                           "balanced_accuracy_ci95_lo": [0.7812, 0.72], "n_train": [798.0, 546.0]})
    page = build_report(load_inputs(root / "metrics", root / "plots"), out_dir=root / "reports",
                        mlflow_table=mlflow)
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
    # dataset table: counts per class; the GAN training table: every entry of train_gan.json
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


def test_every_image_on_the_page_is_a_png_of_sensible_size(binary_report) -> None:
    page, text = binary_report
    sources = image_sources(text)
    assert {"figures/class_counts.png", "figures/gan_losses.png", "figures/recall.png",
            "figures/roc.png", "figures/balanced_accuracy.png", "figures/confusion.png",
            "figures/real_vs_synthetic.png", "figures/samples.png",
            "figures/closest_pairs.png", "figures/selection.png",
            "figures/shortcut.png"} == set(sources)
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
    # the HTML is what matters here
    monkeypatch.setattr(pipeline.report.page, "save_figures", lambda *args: {})
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


def test_the_page_shows_the_audit_warning_when_its_threshold_fell_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted fault: the warning in metrics/generate.json but nowhere on the page."""
    monkeypatch.setattr(pipeline.report.page, "save_figures", lambda *args: {})
    root = write_outputs(tmp_path / "run", class_names=BINARY, evaluate=binary_evaluate())
    quiet = visible(build_report(load_inputs(root / "metrics", root / "plots"),
                                 out_dir=tmp_path / "quiet").read_text())
    generate = json.loads((root / "metrics/generate.json").read_text())
    generate.update(memorization_warning="memorization audit: 78 of 78 validation images are "
                    "copies of training images", memorization_threshold_source="near-copy fallback")
    (root / "metrics/generate.json").write_text(json.dumps(generate))
    shown = visible(build_report(load_inputs(root / "metrics", root / "plots"),
                                 out_dir=tmp_path / "reports").read_text())
    assert "fell back" not in quiet
    assert ("The memorization audit fell back to flagging copies only memorization audit: 78 of "
            "78 validation images are copies of training images") in shown
    facts = kv(section((tmp_path / "reports/index.html").read_text(),
                       "Synthetic image quality and privacy"))
    assert "near-copy fallback" in facts.values(), facts


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


def test_the_report_templates_are_package_data() -> None:
    """Every non-Python file of pipeline/report is declared package data in pyproject.toml, so
    a non-editable install (a wheel) carries the page's skeleton, CSS and reading guide."""
    import tomllib  # Python >= 3.11, as pyproject.toml requires

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["pipeline.report"]
    data = [p.name for p in (REPO / "pipeline/report").iterdir()
            if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert data and all(any(fnmatch(name, pat) for pat in patterns) for name in data), data


def test_every_variant_evaluate_can_run_is_explained_in_words() -> None:
    from pipeline.variants import VARIANTS

    assert set(pipeline.report.page.VARIANT_WORDS) == set(VARIANTS)
