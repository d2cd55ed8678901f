"""The report's shortcut section: can a classifier tell the synthetic images from real ones, and
the guard that names the shortcut when synthetic images cost the minority class recall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.report.fmt import TOL, class_label, esc, f3, join, minority_class, uses_synthetic
from pipeline.shortcut import SHORTCUT_AUC

SET_WORDS = {"selected": "shipped selection (generate.score)",
             "most_real": "most real-looking first", "unselected": "unselected draws"}


def class_auc(generate: Mapping[str, Any], c: int | None, *, which: str = "selected"
              ) -> tuple[float | None, str]:
    """The larger measured AUC (pixels, features) of class c's `which` set, and the reason when
    neither was measured ('' when one was)."""
    tests = ((generate.get("shortcut") or {}).get(which) or {}).get(str(c)) or {}
    aucs = [t["auc"] for t in tests.values() if isinstance(t, Mapping) and t.get("measured")]
    if aucs:
        return max(aucs), ""
    reasons = [t.get("reason", "") for t in tests.values() if isinstance(t, Mapping)]
    return None, (reasons[0] if reasons else "the shortcut test was not run (rerun generate)")


def shortcut_html(generate: Mapping[str, Any], names: Sequence[str]) -> str:
    """A table of the per-class AUCs of every synthetic set, then one plain sentence per class
    about the shipped selection."""
    doc = generate.get("shortcut") or {}
    if not doc:
        return ("<p>The shortcut test was not run: these metrics come from an older generate "
                "stage (rerun <code>dvc repro generate</code>).</p>")
    head = "".join(f"<th>{esc(SET_WORDS.get(k, k))}: pixels</th><th>features</th>"
                   for k in SET_WORDS if k in doc)
    rows = []
    for c, name in enumerate(names):
        cells = "".join(_cells((doc.get(k) or {}).get(str(c)) or {}) for k in SET_WORDS if k in doc)
        rows.append(f"<tr><th>{esc(name)}</th>{cells}</tr>")
    table = (f'<table class="kv"><tr><th>class</th>{head}</tr>{"".join(rows)}</table>')
    sentences = " ".join(class_sentence(generate, c, names) for c in range(len(names)))
    return f"{table}<p>{esc(sentences)}</p>"


def _cells(tests: Mapping[str, Any]) -> str:
    out = []
    for kind in ("pixels", "features"):
        t = tests.get(kind) or {}
        if t.get("measured"):
            ci = t.get("auc_ci95")
            text = f3(t["auc"]) + (f" [{f3(ci[0])}, {f3(ci[1])}]" if ci else "")
        else:
            text = "not measured"
        out.append(f"<td>{esc(text)}</td>")
    return "".join(out)


def class_sentence(generate: Mapping[str, Any], c: int, names: Sequence[str]) -> str:
    auc, reason = class_auc(generate, c)
    name, plain = class_label(c, names), _plain(c, names)
    if auc is None:
        return f"Class {name}: cannot tell ({reason})."
    if auc >= SHORTCUT_AUC:
        return (f"Class {name}: AUC {f3(auc)}: a classifier can learn to spot your synthetic "
                f"{plain} images; it may use that instead of the anatomy.")
    return (f"Class {name}: AUC {f3(auc)}: a classifier finds it hard to tell the synthetic "
            f"{plain} images from real ones (0.5 = not at all).")


def _plain(c: int | None, names: Sequence[str]) -> str:
    """A class name to use inside a sentence, unquoted."""
    return names[c] if c is not None and 0 <= c < len(names) else f"class {c}"


def shortcut_guard(evaluate: Mapping[str, Mapping[str, Any]], generate: Mapping[str, Any],
                   names: Sequence[str]) -> str:
    """'' unless a synthetic variant has lower minority recall than `real`; then one or two
    sentences naming the likely cause from the minority class's shortcut test."""
    real = evaluate.get("real") or {}
    floor = real.get("minority_recall")
    if not isinstance(floor, (int, float)):
        return ""
    worse = [v for v, m in evaluate.items() if uses_synthetic(m)
             and isinstance(m.get("minority_recall"), (int, float))
             and m["minority_recall"] < floor - TOL]
    if not worse:
        return ""
    c = minority_class(evaluate)
    name = _plain(c, names)
    auc, reason = class_auc(generate, c)
    text = (f"{join(worse)} lowered the recall of the minority class {name} below no balancing "
            f"at all (real: {f3(floor)}). ")
    if auc is None:
        return text + (f"Whether a shortcut is the cause cannot be told: the shortcut test could "
                       f"not be measured ({reason}).")
    if auc >= SHORTCUT_AUC:
        return text + (
            f"Likely cause: a shortcut. A classifier tells the synthetic {name} images from real "
            f"ones with ROC AUC {f3(auc)}; when only the minority class receives synthetic "
            f"images, \"looks synthetic\" means \"{name}\", and real {name} images, which do not "
            "look synthetic, are pushed to the other classes. Try gan_mix (every class gets "
            "synthetic images, so being synthetic says nothing about the class) or "
            "generate.score: real (docs/shortcut.md).")
    return text + (
        f"The shortcut test does not point to a shortcut (ROC AUC {f3(auc)} < "
        f"{f3(SHORTCUT_AUC)}): the synthetic {name} images more likely lack what the classifier "
        "needs from real ones (a domain gap); a smaller synthetic share, gan_downweight or a "
        "longer-trained generator may help.")
