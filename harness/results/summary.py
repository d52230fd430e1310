"""A terminal summary of cells (rich table). Display-only unit conversion happens here and in
:mod:`harness.results.display` (the formatting it shares with the training table and the gate report).

Stored values stay in SI units; these modules turn them into readable strings (percentages, ms,
mJ/kJ) for people.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.table import Table

from harness.results.display import MISSING, as_number, as_text, format_accuracy, format_energy, format_seconds
from harness.results.pareto import COST_AXES, DEFAULT_GROUP_COLS, pareto_front
from harness.results.spread import repeat_spread

# format_* live in harness.results.display; still importable from here, as before
__all__ = ["summary_table", "spread_table", "front_axis", "format_seconds", "format_energy", "format_accuracy"]

# NLU task metrics besides accuracy (schema 1.2), shown in a "task metrics" column when present
_TASK_METRICS = (("metric_f1", "F1"), ("metric_mcc", "MCC"), ("metric_pearson", "r"), ("metric_spearman", "ρ"))


def _task_metrics_text(row: pd.Series) -> str:
    parts = [
        f"{label} {as_number(row[c]):.3f}"
        for c, label in _TASK_METRICS
        if c in row.index and as_number(row[c]) is not None
    ]
    return " ".join(parts) or MISSING


def _has_values(df: pd.DataFrame, col: str) -> bool:
    return col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any()


def front_axis(cells_df: pd.DataFrame) -> str | None:
    """The cost axis the summary's front uses: energy per sample (what a problem costs) when any
    ok cell has it, else energy per token, else latency p50, else None."""
    ok = cells_df[cells_df["status"] == "ok"] if "status" in cells_df.columns else cells_df
    for name in ("energy_per_sample_j", "energy_per_token_j", "latency_p50_s"):
        if _has_values(ok, COST_AXES[name].column):
            return name
    return None


def _distinct(df: pd.DataFrame, col: str) -> int:
    return df[col].nunique(dropna=False) if col in df.columns else 0


def summary_table(cells_df: pd.DataFrame, title: str | None = "Results"):
    """A rich table, one row per cell (variant x task; model/batch/repeat shown when they vary).

    Columns: accuracy with its 95 % interval (percentage), n, mean output tokens, p50 latency,
    energy with its source, status, and ``front`` (✓ when the cell is on the accuracy vs
    energy-per-token Pareto front of its (model, task, hardware, batch size) slice; latency p50
    is used when no cell has energy; the caption says which). Only ``status == "ok"`` cells compete.

    Training (fine-tuning) cells get their own table
    (:func:`harness.results.training_summary.training_table`), and so do proving cells
    (:func:`harness.results.proving_summary.proving_table`); with several kinds present the
    result is a ``rich.console.Group`` of the tables.
    """
    if "cell_kind" in cells_df.columns and (cells_df["cell_kind"] == "prove").any():
        from rich.console import Group

        from harness.results.proving_summary import proving_table

        is_proving = cells_df["cell_kind"] == "prove"
        proving = proving_table(cells_df[is_proving], title=title)
        if is_proving.all():
            return proving
        return Group(summary_table(cells_df[~is_proving], title=title), proving)
    if "cell_kind" in cells_df.columns and (cells_df["cell_kind"] == "finetune").any():
        from rich.console import Group

        from harness.results.training_summary import training_table

        is_training = cells_df["cell_kind"] == "finetune"
        trained = training_table(cells_df[is_training], title=title)
        if is_training.all():
            return trained
        return Group(summary_table(cells_df[~is_training], title=title), trained)
    df = cells_df.reset_index(drop=True)
    table = Table(title=title, show_lines=False)
    if df.empty:
        table.caption = "no cells"
        for col in ("task", "variant", "accuracy (95% CI)", "status"):
            table.add_column(col)
        return table

    axis = front_axis(df)
    on_front = pd.Series(False, index=df.index)
    if axis is not None and "accuracy" in df.columns:
        ok = df["status"] == "ok" if "status" in df.columns else pd.Series(True, index=df.index)
        # cells over different sample sets (limits) are not compared on one front
        groups = [c for c in (*DEFAULT_GROUP_COLS, "limit") if c in df.columns]
        on_front.loc[ok[ok].index] = pareto_front(
            df[ok], cost_col=COST_AXES[axis].column, group_cols=groups
        )
    modelled = "energy_estimated" in df.columns and df["energy_estimated"].fillna(False).astype(bool).any()
    note = " (modelled energy: codecarbon estimate)" if modelled else ""
    if axis == "energy_per_sample_j":
        table.caption = f"front ✓: Pareto front of accuracy vs energy per sample{note}"
    elif axis == "energy_per_token_j":
        table.caption = f"front ✓: Pareto front of accuracy vs energy per output token{note}"
    elif axis == "latency_p50_s":
        table.caption = (
            "front ✓: Pareto front of accuracy vs latency p50 (no energy measured for any cell)"
        )
    else:
        table.caption = "front: not computed (neither energy nor latency available)"

    show_model = _distinct(df, "model") > 1
    show_batch = _distinct(df, "batch_size") > 1
    show_repeat = _distinct(df, "repeat") > 1
    show_run = _distinct(df, "run_id") > 1
    show_metrics = any(_has_values(df, c) for c, _ in _TASK_METRICS)
    sort_cols = [c for c in ("run_id", "task", "model", "variant", "batch_size", "repeat") if c in df.columns]
    order = df.sort_values(sort_cols, na_position="last", kind="stable").index if sort_cols else df.index

    if show_run:
        table.add_column("run")
    table.add_column("task")
    if show_model:
        table.add_column("model")
    table.add_column("variant")
    if show_batch:
        table.add_column("batch", justify="right")
    if show_repeat:
        table.add_column("repeat", justify="right")
    table.add_column("n", justify="right")
    table.add_column("accuracy (95% CI)", justify="right")
    if show_metrics:
        table.add_column("task metrics", justify="right")
    table.add_column("out tokens (mean)", justify="right")
    table.add_column("latency p50", justify="right")
    table.add_column("energy", justify="right")
    table.add_column("status")
    table.add_column("front", justify="center")

    def get(row: pd.Series, col: str) -> Any:
        return row[col] if col in row.index else None

    for i in order:
        row = df.loc[i]
        status = as_text(get(row, "status")) or MISSING
        if status == "error" and as_text(get(row, "error")):
            msg = as_text(get(row, "error")) or ""
            status = f"error: {msg[:300]}{'…' if len(msg) > 300 else ''}"
        toks = as_number(get(row, "output_tokens_mean"))
        n = as_number(get(row, "n"))
        cells = [as_text(get(row, "run_id")) or MISSING] if show_run else []
        cells.append(as_text(get(row, "task")) or MISSING)
        if show_model:
            cells.append(as_text(get(row, "model")) or MISSING)
        cells.append(as_text(get(row, "variant")) or MISSING)
        if show_batch:
            cells.append(as_text(get(row, "batch_size")) or MISSING)
        if show_repeat:
            cells.append(as_text(get(row, "repeat")) or MISSING)
        cells += [
            f"{n:.0f}" if n is not None else MISSING,
            format_accuracy(
                get(row, "accuracy"), get(row, "accuracy_ci95_low"), get(row, "accuracy_ci95_high")
            ),
            *([_task_metrics_text(row)] if show_metrics else []),
            f"{toks:.1f}" if toks is not None else MISSING,
            format_seconds(get(row, "latency_p50_s")),
            format_energy(get(row, "energy_j"), get(row, "energy_source")),
            status,
            "✓" if bool(on_front[i]) else "",
        ]
        table.add_row(*cells)
    return table


def _pct(v: Any) -> str:
    x = as_number(v)
    return MISSING if x is None else f"{x * 100:.1f}%"


def spread_table(cells_df: pd.DataFrame, title: str | None = "Spread over repeats") -> Table | None:
    """A rich table of the timing spread (CV) of every cell run more than once; None when no
    cell has two ok repeats (see :func:`harness.results.spread.repeat_spread`)."""
    spread = repeat_spread(cells_df)
    if spread.empty:
        return None
    table = Table(title=title)
    table.caption = "CV = sample standard deviation / mean over the ok repeats"
    for name in ("task", "variant", "repeats", "latency p50 (mean)", "latency p50 CV", "throughput CV", "energy CV"):
        table.add_column(name, justify="left" if name in ("task", "variant") else "right")
    for _, row in spread.sort_values(["task", "variant"]).iterrows():
        table.add_row(
            str(row.get("task", MISSING)),
            str(row.get("variant", MISSING)),
            str(row["repeats"]),
            format_seconds(row.get("latency_p50_s_mean")),
            _pct(row.get("latency_p50_s_cv")),
            _pct(row.get("throughput_tok_per_s_cv")),
            _pct(row.get("energy_j_cv")),
        )
    return table

