"""What the report tests share: the earlier stages' outputs as realistic fixtures (a binary and
a 10-class run), and the report page read as a reader sees it (visible text, table cells)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from pipeline.artifacts import image_grid, save_png

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
                          "memorization_rate": 0.0125, "acceptance_rate": 0.9877,
                          "shortcut": shortcut_doc(k)},
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
    save_png(plots / "generate/closest_pairs.png",
             image_grid([tiles[0, :8], tiles[-1, :8]], scale=6))
    save_png(plots / "generate/selection.png", image_grid(list(tiles), scale=6))
    save_png(plots / "generate/shortcut.png", image_grid(list(tiles), scale=6))
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


def shortcut_doc(k: int) -> dict:
    """generate.json's shortcut test: class 0 easy to spot on pixels, the last class unmeasured
    (too few validation images), the rest hard to tell apart."""
    def test(auc: float) -> dict:
        return {"measured": True, "auc": auc, "auc_ci95": [auc - 0.05, min(1.0, auc + 0.05)],
                "n_real_fit": 100, "n_synthetic_fit": 50, "n_real_held": 20,
                "n_synthetic_held": 50}

    unmeasured = {"measured": False, "reason": "too few images to measure (real_held 3; needs 5 "
                  "to fit and 5 held out of each)"}
    per_class = {str(c): {"pixels": test(0.6), "features": test(0.55)} for c in range(k)}
    per_class["0"] = {"pixels": test(0.97), "features": test(0.7)}
    per_class[str(k - 1)] = {"pixels": unmeasured, "features": unmeasured}
    return {"selected": per_class, "most_real": per_class, "unselected": per_class}


def ten_class_evaluate() -> dict[str, dict]:
    recall = lambda low: {str(c): 1.0 - low * c / 9 for c in range(10)}  # noqa: E731
    return {
        "real": variant(0.951, 0.778, auc=0.9989, recall=recall(0.22), minority=9, n_train=483),
        "gan": variant(0.918, 0.556, auc=0.9979, recall=recall(0.44), minority=9, n_train=1240,
                       vs=(-0.033, (-0.060, -0.008), -0.222, (-0.410, -0.040), -0.001),
                       synthetic=True),
    }


def headline_of(ba: float, ci: tuple[float, float], *, auc: float = 0.0) -> dict[str, Any]:
    return {"gan": "gan", "baseline": "class_weight", "balanced_accuracy_delta": ba,
            "balanced_accuracy_delta_ci95": list(ci), "minority_recall_delta": 0.08,
            "minority_recall_delta_ci95": [-0.05, 0.2], "roc_auc_delta": auc, "n_seeds": 5,
            "n_test": 156, "balanced_accuracy_delta_ci95_width": ci[1] - ci[0],
            "balanced_accuracy_delta_ci95_width_test_only": 0.9 * (ci[1] - ci[0]),
            "resolves_2_points": ci[1] - ci[0] <= 0.04}


# --- the page as a reader sees it ---------------------------------------------------------------

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


def section(page: str, title: str) -> str:
    """The HTML of one <h2> section of the page."""
    return page.split(f"<h2>{title}</h2>", 1)[1].split("<h2", 1)[0]


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def image_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)
