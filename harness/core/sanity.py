"""Impossible figures are bugs, not results: the checks a cell passes before it is stored.

A throughput above :data:`MAX_THROUGHPUT_TOK_PER_S` or below 0, or a negative (or non-finite)
duration or energy, can only come from a broken clock, counter or formula. Storing it as a
figure would put it on a leaderboard; the worker (:func:`harness.executors.worker.run_group`)
writes such a cell with ``status=error`` and the reason instead.

Checked: the cell row's ``throughput_tok_per_s`` and every numeric column whose name ends in
``_s`` (durations: latencies, TTFT, TPOT, ITL percentiles, window and warm-up times) or ``_j``
(energies); in each sample row ``latency_s``, ``ttft_s``, ``tpot_s``, each ``itl_s`` entry,
``duration_s`` and ``energy_j``. Adapter counters (``counter_*``) are the adapter's own and are
not checked. ``None`` means "not measured" and passes.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Iterable, Mapping

MAX_THROUGHPUT_TOK_PER_S = 1e7
"""Above any hardware this harness can run on (a whole H200 node decodes ~1e5 tok/s)."""

SAMPLE_FIGURES = ("latency_s", "ttft_s", "tpot_s", "duration_s", "energy_j")


class ImplausibleFigures(ValueError):
    """A cell's figures are impossible (see the module docstring); the message lists them."""


def _bad(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, bool) or not isinstance(value, Real):
        return None
    v = float(value)
    if not math.isfinite(v):
        return f"{name} = {v} is not finite"
    if v < 0:
        return f"{name} = {v:.6g} < 0"
    return None


def _is_figure(name: str) -> bool:
    return not name.startswith("counter_") and name.endswith(("_s", "_j"))


def problems(cell_row: Mapping[str, Any], sample_rows: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """Every impossible figure of a cell, as short sentences; ``[]`` when all are plausible."""
    out: list[str] = []
    tput = cell_row.get("throughput_tok_per_s")
    if tput is not None and isinstance(tput, Real) and math.isfinite(float(tput)) and tput > MAX_THROUGHPUT_TOK_PER_S:
        out.append(f"throughput_tok_per_s = {float(tput):.6g} > {MAX_THROUGHPUT_TOK_PER_S:g} tok/s")
    for name, value in cell_row.items():
        if name == "throughput_tok_per_s" or _is_figure(name):
            problem = _bad(name, value)
            if problem:
                out.append(problem)
    for row in sample_rows:
        where = f"sample doc {row.get('doc_id')}/{row.get('sample', 0)}"
        for name in SAMPLE_FIGURES:
            problem = _bad(name, row.get(name))
            if problem:
                out.append(f"{where}: {problem}")
        itl = row.get("itl_s")
        for i, gap in enumerate(itl if itl is not None else ()):
            problem = _bad(f"itl_s[{i}]", gap)
            if problem:
                out.append(f"{where}: {problem}")
    return out


def check(cell_row: Mapping[str, Any], sample_rows: Iterable[Mapping[str, Any]] = ()) -> None:
    """Raise :class:`ImplausibleFigures` naming the first few problems, if any."""
    found = problems(cell_row, sample_rows)
    if found:
        more = f" (+{len(found) - 5} more)" if len(found) > 5 else ""
        raise ImplausibleFigures("implausible figures, not stored: " + "; ".join(found[:5]) + more)
