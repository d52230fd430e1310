"""Display-only formatting of stored results values: SI units to readable strings, nulls to ``—``.

Shared by the terminal summary (:mod:`harness.results.summary`), the training-cell table
(:mod:`harness.results.training_summary`), the gate's report (:mod:`harness.gate.report`) and the
dashboard's tables; stored values always stay in SI units.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["MISSING", "as_number", "as_text", "format_seconds", "format_energy", "format_accuracy",
           "ENERGY_SOURCE_CODES", "ENERGY_SOURCE_NAMES", "energy_source_code", "energy_source_legend"]

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


def format_accuracy(acc: Any, low: Any, high: Any, percent_sign: bool = True) -> str:
    """Accuracy and its 95 % interval as percentages, e.g. ``80.0% [49.0–94.3]`` (``80.0 [49.0–94.3]``
    without the sign, for a column whose header says ``%``)."""
    a = as_number(acc)
    if a is None:
        return MISSING
    sign = "%" if percent_sign else ""
    lo, hi = as_number(low), as_number(high)
    if lo is None or hi is None:
        return f"{a * 100:.1f}{sign}"
    return f"{a * 100:.1f}{sign} [{lo * 100:.1f}–{hi * 100:.1f}]"


ENERGY_SOURCE_CODES: dict[str, str] = {
    "nvml_counter": "nv",
    "nvml_power_integral": "nvi",
    "rapl": "rapl",
    "codecarbon_estimate": "cc",
    "unavailable": "-",
}
"""Short codes of the ``energy_source`` vocabulary (DESIGN.md §5) for one narrow column; the
summary's footnote spells out the codes it used (:func:`energy_source_legend`)."""

ENERGY_SOURCE_NAMES: dict[str, str] = {
    "nv": "nvml_counter",
    "nvi": "nvml_power_integral",
    "rapl": "rapl",
    "cc": "codecarbon_estimate (modelled)",
    "-": "unavailable",
}
"""What each code of :data:`ENERGY_SOURCE_CODES` stands for."""


def energy_source_code(source: Any) -> str:
    """The short code of an ``energy_source`` (:data:`ENERGY_SOURCE_CODES`); an unknown source is
    shown whole; null → ``—``."""
    src = as_text(source)
    if src is None:
        return MISSING
    return ENERGY_SOURCE_CODES.get(src, src)


def energy_source_legend(sources) -> str | None:
    """``cc = codecarbon_estimate (modelled); rapl = rapl`` for the codes of ``sources`` (an
    iterable of ``energy_source`` values; unknown ones are shown whole and need no legend); None
    when there is nothing to spell out."""
    used = sorted({energy_source_code(s) for s in sources if as_text(s) is not None})
    spelled = [f"{c} = {ENERGY_SOURCE_NAMES[c]}" for c in used if c in ENERGY_SOURCE_NAMES]
    return "; ".join(spelled) or None
