"""Display-only formatting of stored results values: SI units to readable strings, nulls to ``—``.

Shared by the terminal summary (:mod:`harness.results.summary`), the training-cell table
(:mod:`harness.results.training_summary`), the gate's report (:mod:`harness.gate.report`) and the
dashboard's tables; stored values always stay in SI units.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["MISSING", "as_number", "as_text", "format_seconds", "format_energy", "format_accuracy"]

MISSING = "—"
"""What a table shows for a null (missing) value."""


def as_number(v: Any) -> float | None:
    """``v`` as a float; ``None`` for null (``None``, ``pd.NA``, NaN) or anything not a number."""
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def as_text(v: Any) -> str | None:
    """``str(v)``; ``None`` for null (``None``, ``pd.NA``, NaN)."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def format_seconds(v: Any) -> str:
    """Seconds as ``µs``/``ms``/``s`` with three significant digits; ``—`` for null."""
    x = as_number(v)
    if x is None:
        return MISSING
    if x != 0 and abs(x) < 1e-3:
        return f"{x * 1e6:.3g} µs"
    if abs(x) < 1:
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g} s" if abs(x) < 1000 else f"{x:,.0f} s"


def format_energy(v: Any, source: Any = None) -> str:
    """Joules as ``mJ``/``J``/``kJ`` followed by the source, e.g. ``12.3 J (codecarbon_estimate)``."""
    x = as_number(v)
    src = as_text(source)
    if x is None:
        text = MISSING
    elif x != 0 and abs(x) < 1:
        text = f"{x * 1e3:.3g} mJ"
    elif abs(x) < 1000:
        text = f"{x:.3g} J"
    else:
        text = f"{x / 1e3:.3g} kJ"
    return f"{text} ({src})" if src else text


def format_accuracy(acc: Any, low: Any, high: Any) -> str:
    """Accuracy and its 95 % interval as percentages, e.g. ``80.0% [49.0–94.3]``."""
    a = as_number(acc)
    if a is None:
        return MISSING
    lo, hi = as_number(low), as_number(high)
    if lo is None or hi is None:
        return f"{a * 100:.1f}%"
    return f"{a * 100:.1f}% [{lo * 100:.1f}–{hi * 100:.1f}]"
