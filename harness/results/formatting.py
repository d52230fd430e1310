"""Display-only unit conversion for terminal tables (the summary, the training table, the gate's
report). Stored values stay in SI units; these turn them into readable strings for people."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["MISSING", "num", "text", "format_seconds", "format_energy", "format_accuracy", "ENERGY_SOURCE_CODES",
           "energy_source_code", "energy_source_legend"]

MISSING = "—"

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


def num(v: Any) -> float | None:
    """A float, or None for null/NaN/non-numbers."""
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def text(v: Any) -> str | None:
    """A string, or None for null/NaN."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def format_seconds(v: Any) -> str:
    """Seconds as ``µs``/``ms``/``s`` with three significant digits; ``—`` for null."""
    x = num(v)
    if x is None:
        return MISSING
    if x != 0 and abs(x) < 1e-3:
        return f"{x * 1e6:.3g} µs"
    if abs(x) < 1:
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g} s" if abs(x) < 1000 else f"{x:,.0f} s"


def format_energy(v: Any, source: Any = None) -> str:
    """Joules as ``mJ``/``J``/``kJ``, followed by the source when given, e.g.
    ``12.3 J (codecarbon_estimate)``; ``—`` for null."""
    x = num(v)
    src = text(source)
    if x is None:
        out = MISSING
    elif x != 0 and abs(x) < 1:
        out = f"{x * 1e3:.3g} mJ"
    elif abs(x) < 1000:
        out = f"{x:.3g} J"
    else:
        out = f"{x / 1e3:.3g} kJ"
    return f"{out} ({src})" if src else out


def format_accuracy(acc: Any, low: Any, high: Any, percent_sign: bool = True) -> str:
    """Accuracy and its 95 % interval as percentages, e.g. ``80.0% [49.0–94.3]`` (``80.0 [49.0–94.3]``
    without the sign, for a column whose header says ``%``)."""
    a = num(acc)
    if a is None:
        return MISSING
    sign = "%" if percent_sign else ""
    lo, hi = num(low), num(high)
    if lo is None or hi is None:
        return f"{a * 100:.1f}{sign}"
    return f"{a * 100:.1f}{sign} [{lo * 100:.1f}–{hi * 100:.1f}]"


def energy_source_code(source: Any) -> str:
    """The short code of an ``energy_source`` (:data:`ENERGY_SOURCE_CODES`); an unknown source is
    shown whole; null → ``—``."""
    src = text(source)
    if src is None:
        return MISSING
    return ENERGY_SOURCE_CODES.get(src, src)


def energy_source_legend(sources) -> str | None:
    """``cc = codecarbon_estimate (modelled: …); rapl = …`` for the codes of ``sources`` (an
    iterable of ``energy_source`` values; unknown ones are shown whole and need no legend); None
    when there is nothing to spell out."""
    used = sorted({energy_source_code(s) for s in sources if text(s) is not None})
    spelled = [f"{c} = {ENERGY_SOURCE_NAMES[c]}" for c in used if c in ENERGY_SOURCE_NAMES]
    return "; ".join(spelled) or None
