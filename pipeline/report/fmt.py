"""Small shared pieces of the report: how numbers are shown, and which variant is best."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Differences below this are "the same": the report shows three decimals.
TOL = 5e-4


def is_number(x: Any) -> bool:
    """A finite int or float (numpy's too); not a bool, None or NaN."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
        and math.isfinite(float(x))


def is_interval(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) == 2 and all(is_number(v) for v in x)


def num(x: Any) -> float:
    return float(x) if is_number(x) else float("nan")


def f3(x: Any) -> str:
    """Three decimals, or a dash for a missing or undefined value."""
    return f"{float(x):.3f}" if is_number(x) else "—"


def signed(x: Any) -> str:
    return f"{float(x):+.3f}" if is_number(x) else "—"


def ci_text(ci: Any) -> str:
    return f" (95% CI [{f3(ci[0])}, {f3(ci[1])}])" if is_interval(ci) else ""


def count(x: Any) -> str:
    return str(int(x)) if is_number(x) else "—"


def show(v: Any) -> str:
    """A value of a key-value table: large floats with thousands separators, others to 4 digits."""
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return "—" if v is None else str(v)


def join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def class_label(c: int | None, names: Sequence[str]) -> str:
    if c is None:
        return "(unknown)"
    return f"'{names[c]}'" if 0 <= c < len(names) else f"'{c}'"


def split_counts(prepare: Mapping[str, Any], split: str) -> dict[str, int]:
    """prepare.json's images per class of one split, keyed by the class index as a string."""
    return dict((prepare.get("counts") or {}).get(split) or {})


def best_variants(runs: Mapping[str, Mapping[str, Any]], key: str) -> list[str]:
    """The variants with the highest value of `key` (ties within TOL), in file order."""
    values = {v: num(m.get(key)) for v, m in runs.items()}
    finite = [x for x in values.values() if not math.isnan(x)]
    if not finite:
        return [next(iter(runs))]
    top = max(finite)
    return [v for v, x in values.items() if not math.isnan(x) and x >= top - TOL]


def bold_variants(runs: Mapping[str, Mapping[str, Any]], key: str) -> set[str]:
    """Variants whose `key` is the best of its column; none when every variant ties."""
    top = [v for v in best_variants(runs, key) if is_number(runs[v].get(key))]
    return set() if len(runs) > 1 and len(top) == len(runs) else set(top)


def minority_class(runs: Mapping[str, Mapping[str, Any]]) -> int | None:
    """The minority class evaluate recorded (the same in every variant)."""
    for m in runs.values():
        if isinstance(m.get("minority_class"), int):
            return m["minority_class"]
    return None


def uses_synthetic(m: Mapping[str, Any]) -> bool:
    """Whether a variant trained on synthetic images, as evaluate.json records it."""
    return bool(m.get("synthetic"))
