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

from harness.results.display import MISSING as _MISSING
from harness.results.display import energy_source_code, energy_source_legend, format_energy, format_seconds
from harness.results.display import as_number as _num
from harness.results.display import as_text as _str
from harness.results.fit_table import FitColumn, FitTable
from harness.results.pareto import pareto_front

__all__ = ["training_table", "format_bytes", "format_count"]


def format_bytes(v: Any) -> str:
    """Bytes as ``kB``/``MB``/``GB`` (decimal) with three significant digits; ``—`` for null."""
    x = _num(v)
    if x is None:
        return _MISSING
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} B"


def format_count(v: Any) -> str:
    """A count as ``k``/``M`` with three significant digits."""
    x = _num(v)
    if x is None:
        return _MISSING
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.0f}"


def _metric(row: pd.Series) -> str:
    name = _str(row.get("task_metric")) or "accuracy"
    value = _num(row.get("task_metric_value"))
    if value is None:
        value, name = _num(row.get("accuracy")), "accuracy"
    if value is None:
        return _MISSING
    return f"{name} {value * 100:.1f}%" if name == "accuracy" else f"{name} {value:.3f}"


def training_table(cells_df: pd.DataFrame, title: str | None = "Training cells", wide: bool = False) -> FitTable:
    """A rich table of training cells (see module docstring); ``status == "ok"`` cells compete.

    At 80 columns: task, variant, n, metric, trainable (share), saved activations, training time,
    training energy and its source code (``src``, spelled out in the caption), status when a cell
    failed, front. ``wide`` adds steps, final loss, the adapter's size and the switch time.
    Variant names are never cut.
    """
    df = cells_df.reset_index(drop=True)
    failed = "status" in df.columns and (df["status"].fillna("") != "ok").any()
    names = ["task", "variant", "n", "metric", "trainable", "saved act.", "train time", "train J", "src"]
    if wide:
        names += ["steps", "final loss", "adapter", "switch"]
    names += (["status"] if failed else []) + ["front"]
    columns = [FitColumn(n, "left" if n in ("task", "variant", "status", "src") else "right",
                         keep=n in ("task", "variant", "front")) for n in names]
    if df.empty:
        return FitTable(columns, [], title=title, caption="no training cells")
    ok = df["status"] == "ok" if "status" in df.columns else pd.Series(True, index=df.index)
    on_front = pd.Series(False, index=df.index)
    if "trainable_params" in df.columns and ok.any():
        ranked = df[ok].assign(_metric=pd.to_numeric(df.loc[ok, "task_metric_value"], errors="coerce")
                               if "task_metric_value" in df.columns else df.loc[ok, "accuracy"])
        groups = [c for c in ("model", "task", "hardware_id", "limit") if c in df.columns]
        on_front.loc[ranked.index] = pareto_front(ranked, acc_col="_metric", cost_col="trainable_params",
                                                  group_cols=groups)
    legend = energy_source_legend(df["train_energy_source"]) if "train_energy_source" in df.columns else None
    caption = ("front ✓: Pareto front of the task metric vs trainable parameters (per model × task × hardware)"
               + (f"\nsrc (training energy source): {legend}" if legend else ""))
    sort_cols = [c for c in ("task", "model", "variant", "seed", "repeat") if c in df.columns]
    errors, rows = [], []
    for i in df.sort_values(sort_cols, kind="stable").index:
        row = df.loc[i]
        share = _num(row.get("trainable_share"))
        trainable = format_count(row.get("trainable_params")) + (f" ({share * 100:.3g}%)" if share is not None else "")
        loss = _num(row.get("final_train_loss"))
        status = _str(row.get("status")) or _MISSING
        if status != "ok":
            errors.append(f"[{len(errors) + 1}] {_str(row.get('task'))} · {_str(row.get('variant'))}: "
                          f"{(_str(row.get('error')) or '')[:300]}")
            status = f"{status} [{len(errors)}]"
        n = _num(row.get("n"))
        steps = _num(row.get("steps"))
        values = [
            _str(row.get("task")) or _MISSING,
            _str(row.get("variant")) or _MISSING,
            f"{n:.0f}" if n is not None else _MISSING,
            _metric(row),
            trainable,
            format_bytes(row.get("saved_activation_bytes")),
            format_seconds(row.get("train_time_s")),
            format_energy(row.get("train_energy_j")),
            energy_source_code(row.get("train_energy_source")),
        ]
        if wide:
            values += [
                f"{steps:.0f}" if steps is not None else _MISSING,
                f"{loss:.3f}" if loss is not None else _MISSING,
                format_bytes(row.get("adapter_bytes")),
                format_seconds(row.get("switch_time_s")),
            ]
        values += ([status] if failed else []) + ["✓" if bool(on_front[i]) else ""]
        rows.append(values)
    if errors:
        caption += "\n" + "\n".join(errors)
    return FitTable(columns, rows, title=title, caption=caption)
