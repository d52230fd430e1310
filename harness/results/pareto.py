"""Accuracy-vs-cost Pareto front (DESIGN section 7).

A row is on the front when no other row of its slice is at least as accurate *and* at most as
costly while strictly better on one of the two. Identical points do not dominate each other, so
ties are kept (both on the front). Rows with a null/NaN accuracy or cost are never on the front
and do not take part in dominance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["CostAxis", "COST_AXES", "DEFAULT_GROUP_COLS", "pareto_front", "pareto_mask", "sole_variant"]


class CostAxis(NamedTuple):
    """A cost offered on the Pareto plot: stored column, human label, stored (SI) unit."""

    column: str
    label: str
    unit: str


COST_AXES: dict[str, CostAxis] = {
    "energy_per_correct_j": CostAxis("energy_per_correct_j", "Energy per correct answer", "J"),
    "energy_per_token_j": CostAxis("energy_per_token_j", "Energy per output token", "J"),
    "energy_per_sample_j": CostAxis("energy_per_sample_j", "Energy per sample (problem)", "J"),
    "latency_p50_s": CostAxis("latency_p50_s", "Latency p50", "s"),
    "latency_p90_s": CostAxis("latency_p90_s", "Latency p90", "s"),
    "output_tokens_mean": CostAxis("output_tokens_mean", "Mean output tokens", "tokens"),
    "peak_rss_bytes": CostAxis("peak_rss_bytes", "Peak RSS (host memory)", "bytes"),
    "ttft_p50_s": CostAxis("ttft_p50_s", "Time to first token p50", "s"),
    # training cells (fine-tuning)
    "trainable_params": CostAxis("trainable_params", "Trainable parameters", "params"),
    "saved_activation_bytes": CostAxis("saved_activation_bytes", "Saved activations (training step)", "bytes"),
    "train_time_s": CostAxis("train_time_s", "Training time", "s"),
    "train_energy_j": CostAxis("train_energy_j", "Training energy", "J"),
    # agent cells (τ²): accuracy is the success rate; energy_per_correct_j is energy per success
    # and latency_p50_s the simulation's wall time there
    "agent_tokens_per_task": CostAxis("agent_tokens_per_task", "Agent tokens per task", "tokens"),
    "agent_tokens_per_success": CostAxis("agent_tokens_per_success", "Agent tokens per success", "tokens"),
}
"""Cost axes by name: ``name -> CostAxis(column, label, unit)``; lower is better on every axis."""

DEFAULT_GROUP_COLS: tuple[str, ...] = ("model", "task", "hardware_id", "batch_size")


def pareto_mask(accuracy: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Boolean front membership for 1-D arrays (NaN in either → False).

    Point i is dominated if some j has ``acc_j >= acc_i``, ``cost_j <= cost_i`` and one of them
    strictly. O(n^2) in memory chunks; slices hold a handful of variants.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if acc.shape != cost.shape or acc.ndim != 1:
        raise ValueError("accuracy and cost must be 1-D arrays of the same length")
    valid = ~(np.isnan(acc) | np.isnan(cost))
    out = np.zeros(acc.shape, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    a, c = acc[idx], cost[idx]
    on = np.empty(idx.size, dtype=bool)
    step = max(1, 4_000_000 // idx.size)
    for start in range(0, idx.size, step):
        ai = a[start : start + step, None]
        ci = c[start : start + step, None]
        no_worse = (a[None, :] >= ai) & (c[None, :] <= ci)
        better = (a[None, :] > ai) | (c[None, :] < ci)
        on[start : start + step] = ~np.any(no_worse & better, axis=1)
    out[idx] = on
    return out


def pareto_front(
    df: pd.DataFrame,
    acc_col: str = "accuracy",
    cost_col: str = "energy_per_token_j",
    group_cols: Sequence[str] = DEFAULT_GROUP_COLS,
) -> pd.Series:
    """Which rows of ``df`` are on the accuracy (higher better) vs cost (lower better) front.

    The front is computed separately within each group of ``group_cols`` (a null group value is
    a group of its own). Filter ``df`` beforehand to what should compete (e.g. ``status == "ok"``).

    Args:
        df: cell rows (e.g. from :func:`harness.results.reader.read_cells`).
        acc_col: accuracy column (higher is better).
        cost_col: cost column (lower is better), e.g. a ``COST_AXES[...].column``.
        group_cols: columns defining the slices that are compared; ``()`` for one slice.

    Returns:
        A bool Series aligned with ``df.index`` (name ``"on_front"``); False for rows whose
        accuracy or cost is null/NaN/non-numeric.

    Raises:
        KeyError: if ``acc_col``, ``cost_col`` or a group column is not in ``df``.
    """
    missing = [c for c in (acc_col, cost_col, *group_cols) if c not in df.columns]
    if missing:
        raise KeyError(f"pareto_front: column(s) {missing} not in the frame")
    result = pd.Series(False, index=df.index, dtype=bool, name="on_front")
    if df.empty:
        return result
    acc = pd.to_numeric(df[acc_col], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    cost = pd.to_numeric(df[cost_col], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    if not group_cols:
        result[:] = pareto_mask(acc, cost)
        return result
    group_ids = (
        df[list(group_cols)]
        .reset_index(drop=True)
        .groupby(list(group_cols), dropna=False, sort=False)
        .ngroup()
        .to_numpy()
    )
    mask = np.zeros(len(df), dtype=bool)
    for gid in np.unique(group_ids):
        pos = np.flatnonzero(group_ids == gid)
        mask[pos] = pareto_mask(acc[pos], cost[pos])
    result[:] = mask
    return result


def sole_variant(
    df: pd.DataFrame,
    acc_col: str = "accuracy",
    cost_col: str = "energy_per_token_j",
    group_cols: Sequence[str] = DEFAULT_GROUP_COLS,
    variant_col: str = "variant",
) -> pd.Series:
    """Rows that are the only variant of their slice: their group (as in :func:`pareto_front`)
    holds no other ``variant_col`` value among the rows with a numeric accuracy and cost. Such a
    row is trivially on its front; displays say "only variant in this slice" instead.

    Returns:
        A bool Series aligned with ``df.index`` (name ``"sole_variant"``); False for rows whose
        accuracy or cost is missing.
    """
    result = pd.Series(False, index=df.index, dtype=bool, name="sole_variant")
    if df.empty:
        return result
    acc = pd.to_numeric(df[acc_col], errors="coerce")
    cost = pd.to_numeric(df[cost_col], errors="coerce")
    valid = acc.notna() & cost.notna()
    if not valid.any():
        return result
    part = df[valid]
    names = part[variant_col].astype("object").fillna("") if variant_col in part.columns else pd.Series("", index=part.index)
    if group_cols:
        counts = names.groupby([part[c] for c in group_cols], dropna=False).transform("nunique")
    else:
        counts = pd.Series(names.nunique(), index=part.index)
    result.loc[part.index] = (counts == 1).to_numpy()
    return result
