"""A terminal table of training (fine-tuning) cells: the task metric next to what it cost.

One row per training cell: the task's headline metric (accuracy, F1 for MRPC, MCC for CoLA),
trainable parameters and their share, bytes saved for backward in one step, training time and
energy (with its source), steps, final training loss, the stored adapter's size and the time to
switch to it. ``front`` marks the Pareto front of the task metric against trainable parameters
within each (model, task, hardware) slice. Display-only unit conversion happens here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.table import Table

from harness.results.display import MISSING, as_number, as_text, format_energy, format_seconds
from harness.results.pareto import pareto_front

__all__ = ["training_table", "format_bytes", "format_count"]


def format_bytes(v: Any) -> str:
    """Bytes as ``kB``/``MB``/``GB`` (decimal) with three significant digits; ``—`` for null."""
    x = as_number(v)
    if x is None:
        return MISSING
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} B"


def format_count(v: Any) -> str:
    """A count as ``k``/``M`` with three significant digits."""
    x = as_number(v)
    if x is None:
        return MISSING
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.0f}"


def _metric(row: pd.Series) -> str:
    name = as_text(row.get("task_metric")) or "accuracy"
    value = as_number(row.get("task_metric_value"))
    if value is None:
        value, name = as_number(row.get("accuracy")), "accuracy"
    if value is None:
        return MISSING
    return f"{name} {value * 100:.1f}%" if name == "accuracy" else f"{name} {value:.3f}"


def training_table(cells_df: pd.DataFrame, title: str | None = "Training cells") -> Table:
    """A rich table of training cells (see module docstring); ``status == "ok"`` cells compete."""
    df = cells_df.reset_index(drop=True)
    table = Table(title=title)
    columns = ("task", "variant", "n", "metric", "trainable", "saved act.", "train time", "train energy",
               "steps", "final loss", "adapter", "switch", "status", "front")
    for col in columns:
        table.add_column(col, justify="left" if col in ("task", "variant", "status") else "right")
    if df.empty:
        table.caption = "no training cells"
        return table
    ok = df["status"] == "ok" if "status" in df.columns else pd.Series(True, index=df.index)
    on_front = pd.Series(False, index=df.index)
    if "trainable_params" in df.columns and ok.any():
        ranked = df[ok].assign(_metric=pd.to_numeric(df.loc[ok, "task_metric_value"], errors="coerce")
                               if "task_metric_value" in df.columns else df.loc[ok, "accuracy"])
        groups = [c for c in ("model", "task", "hardware_id", "limit") if c in df.columns]
        on_front.loc[ranked.index] = pareto_front(ranked, acc_col="_metric", cost_col="trainable_params",
                                                  group_cols=groups)
    table.caption = "front ✓: Pareto front of the task metric vs trainable parameters (per model × task × hardware)"
    sort_cols = [c for c in ("task", "model", "variant", "seed", "repeat") if c in df.columns]
    for i in df.sort_values(sort_cols, kind="stable").index:
        row = df.loc[i]
        share = as_number(row.get("trainable_share"))
        trainable = format_count(row.get("trainable_params")) + (f" ({share * 100:.3g}%)" if share is not None else "")
        loss = as_number(row.get("final_train_loss"))
        status = as_text(row.get("status")) or MISSING
        if status == "error":
            status = f"error: {(as_text(row.get('error')) or '')[:200]}"
        n = as_number(row.get("n"))
        steps = as_number(row.get("steps"))
        table.add_row(
            as_text(row.get("task")) or MISSING,
            as_text(row.get("variant")) or MISSING,
            f"{n:.0f}" if n is not None else MISSING,
            _metric(row),
            trainable,
            format_bytes(row.get("saved_activation_bytes")),
            format_seconds(row.get("train_time_s")),
            format_energy(row.get("train_energy_j"), row.get("train_energy_source")),
            f"{steps:.0f}" if steps is not None else MISSING,
            f"{loss:.3f}" if loss is not None else MISSING,
            format_bytes(row.get("adapter_bytes")),
            format_seconds(row.get("switch_time_s")),
            status,
            "✓" if bool(on_front[i]) else "",
        )
    return table
