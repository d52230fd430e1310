"""Run-to-run spread of a cell's timing figures over its repeats (DESIGN.md §4: repeats).

A suite's ``repeats: N`` runs every cell N times (cells that differ only in ``repeat``).
Accuracy does not vary between repeats of a greedy cell; timing and energy do, and a
reader needs to know by how much before trusting a difference. The spread is the
coefficient of variation (sample standard deviation / mean) across the ok repeats.
"""

from __future__ import annotations

import pandas as pd

from harness.core.stats import coefficient_of_variation

__all__ = ["REPEAT_KEY", "SPREAD_METRICS", "repeat_spread"]

REPEAT_KEY = ("run_id", "model", "dtype", "batch_size", "task", "task_version", "variant", "params_hash")
"""Cells sharing these values are repeats of one cell (the gate's matching key plus the run)."""

SPREAD_METRICS = ("latency_p50_s", "ttft_p50_s", "tpot_p50_s", "throughput_tok_per_s", "generation_time_s", "energy_j")
"""Cell columns whose spread over repeats is reported."""


def repeat_spread(cells: pd.DataFrame) -> pd.DataFrame:
    """Mean and CV of :data:`SPREAD_METRICS` over each cell's ok repeats.

    Returns:
        One row per repeated cell (groups with at least two ok repeats only): the key columns
        present, ``repeats`` (count), and ``<metric>_mean`` / ``<metric>_cv`` per metric (CV a
        fraction, null when a metric has fewer than two values). Empty when nothing repeats.
    """
    if cells.empty or "repeat" not in cells.columns:
        return pd.DataFrame()
    ok = cells[cells["status"] == "ok"] if "status" in cells.columns else cells
    key = [c for c in REPEAT_KEY if c in ok.columns]
    rows = []
    for values, group in ok.groupby(key, dropna=False, sort=True):
        if len(group) < 2:
            continue
        row = dict(zip(key, values if isinstance(values, tuple) else (values,)))
        row["repeats"] = len(group)
        for m in SPREAD_METRICS:
            if m not in group.columns:
                continue
            col = pd.to_numeric(group[m], errors="coerce")
            row[f"{m}_mean"] = col.mean()
            row[f"{m}_cv"] = coefficient_of_variation(col.tolist())
        rows.append(row)
    return pd.DataFrame(rows)
