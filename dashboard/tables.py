"""Pure pandas builders for the pages (no Streamlit): leaderboard rows, the Pareto slice, the
run-vs-run comparison, sample filters. Stored values stay in SI units; display-only scaling
(bytes to MiB) happens here and is named in the column label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.results import COST_AXES, pareto_front
from harness.results.display import as_number
from harness.results.pareto import DEFAULT_GROUP_COLS

from dashboard.data import col

__all__ = [
    "ci_text",
    "leaderboard_rows",
    "counter_columns",
    "pareto_slice",
    "depth_curves",
    "DEPTH_CURVE_COLUMNS",
    "best_within",
    "axis_energy_note",
    "compare_runs",
    "COMPARE_METRICS",
    "filter_samples",
    "SAMPLE_FILTERS",
    "distinct",
]

MIB = 1024.0**2


def ci_text(low, high) -> str:
    """``[49.0–94.3]`` (percent) or an empty string when either bound is missing."""
    lo, hi = as_number(low), as_number(high)
    return "" if lo is None or hi is None else f"[{lo * 100:.1f}–{hi * 100:.1f}]"


def counter_columns(cells: pd.DataFrame) -> list[str]:
    """The adapter counter columns (``counter_*``) that hold at least one value."""
    return [c for c in cells.columns if c.startswith("counter_") and cells[c].notna().any()]


def _energy_source(cells: pd.DataFrame) -> pd.Series:
    src = col(cells, "energy_source").astype("object")
    est = col(cells, "energy_estimated").astype("object")
    return pd.Series(
        [
            (f"{s} (estimate)" if (e is True or e == 1) and "estimate" not in s else str(s))
            if isinstance(s, str)
            else ""
            for s, e in zip(src, est)
        ],
        index=cells.index,
    )


LEADERBOARD_COLUMNS: dict[str, str] = {
    "variant": "variant",
    "adapter": "adapter",
    "model": "model",
    "hardware": "hardware",
    "batch_size": "batch",
    "accuracy": "accuracy",
    "accuracy_ci": "95% CI (%)",
    "n": "n",
    "metric_f1": "F1",  # NLU task metrics (shown when a cell has them)
    "metric_mcc": "MCC",
    "metric_pearson": "Pearson r",
    "metric_spearman": "Spearman ρ",
    "energy_per_token_j": "energy/token (J)",
    "energy_per_correct_j": "energy/correct (J)",
    "energy_source": "energy source",
    "latency_p50_s": "latency p50 (s)",
    "latency_p90_s": "latency p90 (s)",
    "ttft_p50_s": "TTFT p50 (s)",
    "output_tokens_mean": "out tokens",
    "truncation_rate": "truncated",
    "throughput_tok_per_s": "throughput (tok/s)",
    "warmup_time_s": "cold start (s)",
    "peak_rss_mib": "peak RSS (MiB)",
    "peak_allocated_mib": "peak GPU alloc (MiB)",
    "params_json": "params",
    "run_id": "run",
    "status": "status",
    "error": "error",
}
"""Leaderboard column -> label, in display order (``counter_*`` columns go before ``params``)."""


def leaderboard_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """One display row per cell, columns of :data:`LEADERBOARD_COLUMNS` (present ones) plus
    counters; sorted by accuracy (best first). Never fails on missing columns."""

    def num(name: str) -> pd.Series:
        return pd.to_numeric(col(cells, name), errors="coerce").astype("float64")

    out: dict[str, pd.Series | list] = {
        name: col(cells, name) for name in ("variant", "adapter", "model", "hardware", "batch_size")
    }
    out["accuracy"] = num("accuracy")
    out["accuracy_ci"] = [
        ci_text(lo, hi) for lo, hi in zip(col(cells, "accuracy_ci95_low"), col(cells, "accuracy_ci95_high"))
    ]
    out["n"] = col(cells, "n")
    for name in ("metric_f1", "metric_mcc", "metric_pearson", "metric_spearman"):  # a task's official metrics
        if num(name).notna().any():
            out[name] = num(name)
    for name in ("energy_per_token_j", "energy_per_correct_j"):
        out[name] = num(name)
    out["energy_source"] = _energy_source(cells)
    for name in ("latency_p50_s", "latency_p90_s", "ttft_p50_s", "output_tokens_mean", "truncation_rate", "throughput_tok_per_s"):
        out[name] = num(name)
    warmup = num("warmup_time_s")
    if warmup.notna().any():
        out["warmup_time_s"] = warmup
    out["peak_rss_mib"] = num("peak_rss_bytes") / MIB
    gpu = num("peak_allocated_bytes") / MIB
    if gpu.notna().any():
        out["peak_allocated_mib"] = gpu
    for c in counter_columns(cells):
        out[c] = pd.to_numeric(cells[c], errors="coerce")
    out["params_json"] = col(cells, "params_json")
    out["run_id"] = col(cells, "run_id")
    status = col(cells, "status")
    if (status != "ok").any():
        out["status"] = status
        out["error"] = col(cells, "error")
    frame = pd.DataFrame(out, index=cells.index)
    return frame.sort_values(["accuracy", "variant"], ascending=[False, True], na_position="last", kind="stable")


def pareto_slice(cells: pd.DataFrame, axis: str) -> pd.DataFrame:
    """The ok cells with ``on_front`` (the shared :func:`harness.results.pareto_front` within
    each (model, task, hardware, batch size) group) and ``cost`` (the axis column) added."""
    column = COST_AXES[axis].column
    ok = cells[col(cells, "status") == "ok"].copy()
    ok["cost"] = pd.to_numeric(col(ok, column), errors="coerce").astype("float64")
    ok["accuracy"] = pd.to_numeric(col(ok, "accuracy"), errors="coerce").astype("float64")
    for g in DEFAULT_GROUP_COLS:
        if g not in ok.columns:
            ok[g] = None
    ok["on_front"] = pareto_front(ok, cost_col="cost", group_cols=DEFAULT_GROUP_COLS) if len(ok) else False
    return ok


DEPTH_COLUMN = re.compile(r"^counter_(?P<metric>.+?)_depth_(?P<depth>\d+)$")
"""A per-depth metric column of a training cell, e.g. ``counter_accuracy_depth_2`` (the
``counter_<metric>_<output>`` form of docs/CONTRACTS.md, written by ``sorted_depth``)."""

DEPTH_CURVE_COLUMNS = (
    "line", "task", "metric", "depth", "value", "full_depth", "cell_value",
    "variant", "adapter", "model", "run_id", "cell_hash",
)
"""Columns of :func:`depth_curves` (one row per point)."""


def _cell_metric(row: pd.Series, metric: str) -> float | None:
    """The cell's own (headline) figure for ``metric``: ``task_metric_value`` when ``task_metric``
    names it, else ``accuracy`` or ``metric_<metric>``."""
    if row.get("task_metric") == metric:
        v = as_number(row.get("task_metric_value"))
        if v is not None:
            return v
    return as_number(row.get("accuracy" if metric == "accuracy" else f"metric_{metric}"))


def depth_curves(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (fine-tuning cell, metric, depth) from the ``counter_<metric>_depth_<k>``
    columns: ``depth`` = k (transformer blocks before the shared head), ``value`` = the metric at
    that exit. Only ok training cells (``cell_kind == "finetune"``) with at least one non-null
    per-depth value count; cells without any give no rows (an empty frame, same columns).

    ``full_depth`` marks each curve's deepest exit, the model the cell's headline figure comes
    from; ``cell_value`` is that headline (``task_metric_value``, else ``accuracy``/``metric_*``).
    ``line`` names the curve: the variant, plus the model when several models are present and
    the run when a variant has several cells (all-runs view). Sorted by task, line, depth."""
    found = [(c, m.group("metric"), int(m.group("depth"))) for c in cells.columns if (m := DEPTH_COLUMN.match(c))]
    mask = (col(cells, "cell_kind") == "finetune") & (col(cells, "status") == "ok")
    train = cells[mask.fillna(False).astype(bool)]
    rows: list[dict] = []
    for idx, cell in train.iterrows():
        points = [(metric, depth, as_number(cell[c])) for c, metric, depth in found]
        points = [p for p in points if p[2] is not None]
        for metric in sorted({p[0] for p in points}):
            mine = sorted((d, v) for m, d, v in points if m == metric)
            deepest = mine[-1][0]
            headline = _cell_metric(cell, metric)
            for depth, value in mine:
                rows.append(
                    {
                        "_idx": idx,
                        "task": cell.get("task"),
                        "metric": metric,
                        "depth": depth,
                        "value": value,
                        "full_depth": depth == deepest,
                        "cell_value": headline,
                        "variant": cell.get("variant"),
                        "adapter": cell.get("adapter"),
                        "model": cell.get("model"),
                        "run_id": cell.get("run_id"),
                        "cell_hash": cell.get("cell_hash"),
                    }
                )
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in DEPTH_CURVE_COLUMNS})
    out = pd.DataFrame(rows)
    several_models = out["model"].astype("object").nunique(dropna=False) > 1
    base = out["variant"].astype("object").fillna("—").astype(str)
    if several_models:
        base = base + " · " + out["model"].astype("object").fillna("—").astype(str).str.split(":").str[-1]
    # a variant with several cells in one task (repeats, other runs): name the run as well
    cells_per = out.assign(_base=base).groupby(["task", "metric", "_base"], dropna=False)["_idx"].transform("nunique")
    run = out["run_id"].astype("object").fillna("—").astype(str)
    out["line"] = base.where(cells_per <= 1, base + " · run " + run)
    # the same variant twice within one run (repeats): the cell hash tells them apart
    still = out.groupby(["task", "metric", "line"], dropna=False)["_idx"].transform("nunique") > 1
    out.loc[still, "line"] = out.loc[still, "line"] + " · " + out.loc[still, "cell_hash"].astype(str).str[:8]
    out = out.sort_values(["task", "metric", "line", "depth"], kind="stable").reset_index(drop=True)
    return out[list(DEPTH_CURVE_COLUMNS)]


def best_within(points: pd.DataFrame, budget: float) -> pd.Series | None:
    """The most accurate point whose cost is at most ``budget`` (ties: the cheaper), or None."""
    inside = points[(points["cost"] <= budget) & points["accuracy"].notna()]
    if inside.empty:
        return None
    return inside.sort_values(["accuracy", "cost"], ascending=[False, True], kind="stable").iloc[0]


def axis_energy_note(points: pd.DataFrame, axis: str) -> str | None:
    """For an energy axis: ``"modelled estimate (codecarbon_estimate)"`` when any plotted figure is
    modelled (``energy_estimated``), ``"measured (nvml_counter)"`` otherwise; None for other axes."""
    if not COST_AXES[axis].column.startswith("energy"):
        return None
    shown = points[points["cost"].notna()]
    sources = sorted({s for s in col(shown, "energy_source").dropna().astype(str)})
    est = col(shown, "energy_estimated").astype("object")
    estimated = any(e is True or e == 1 for e in est)
    if estimated:
        all_est = all(e is True or e == 1 for e in est)
        kind = "modelled estimate" if all_est else "includes modelled estimates"
        return f"{kind} ({', '.join(sources)})"
    return f"measured ({', '.join(sources)})" if sources else None


COMPARE_METRICS: dict[str, tuple[str, bool]] = {
    "accuracy": ("accuracy", True),
    "output_tokens_mean": ("out tokens", False),
    "latency_p50_s": ("latency p50 (s)", False),
    "latency_p90_s": ("latency p90 (s)", False),
    "energy_per_token_j": ("energy/token (J)", False),
    "energy_per_correct_j": ("energy/correct (J)", False),
    "peak_rss_bytes": ("peak RSS (bytes)", False),
    "throughput_tok_per_s": ("throughput (tok/s)", True),
}
"""Compared metrics: column -> (label, higher is better)."""

COMPARE_KEY = ("task", "model", "variant")
SETTING_COLS = {"batch_size": "batch", "hardware_id": "hardware", "limit": "limit"}
"""Settings that make a pair not like for like when they differ (flagged in ``note``)."""


def compare_runs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model, variant): each metric in run A and B and its delta (accuracy: B − A in
    points; others: B / A − 1). Repeats are averaged. ``note`` flags a batch size, hardware or
    limit that differs between the two; ``only_in`` marks rows present in one run only."""

    def agg(df: pd.DataFrame) -> pd.DataFrame:
        df = df[col(df, "status") == "ok"].copy()
        for k in COMPARE_KEY:
            df[k] = col(df, k).astype("object").fillna("—")
        num = {m: pd.to_numeric(col(df, m), errors="coerce").astype("float64") for m in COMPARE_METRICS}
        frame = pd.DataFrame({**{k: df[k] for k in COMPARE_KEY}, **num})
        for k in SETTING_COLS:
            frame[k] = col(df, k).astype("object")
        g = frame.groupby(list(COMPARE_KEY), dropna=False, sort=True)
        out = g[list(COMPARE_METRICS)].mean()
        for k in SETTING_COLS:
            out[k] = g[k].agg(lambda s: ",".join(sorted({str(x) for x in s})))
        return out

    A, B = agg(a), agg(b)
    joined = A.merge(B, how="outer", left_index=True, right_index=True, suffixes=("_a", "_b"))
    rows = pd.DataFrame(index=joined.index)
    for m, (_, _higher) in COMPARE_METRICS.items():
        va, vb = joined[f"{m}_a"], joined[f"{m}_b"]
        rows[f"{m}_a"], rows[f"{m}_b"] = va, vb
        if m == "accuracy":
            rows[f"{m}_delta"] = vb - va
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                rows[f"{m}_delta"] = np.where(va > 0, vb / va - 1.0, np.nan)
    notes = []
    for _, row in joined.iterrows():
        n = []
        if isinstance(row["batch_size_a"], str) and isinstance(row["batch_size_b"], str):
            for k, label in SETTING_COLS.items():
                a_val, b_val = row[f"{k}_a"], row[f"{k}_b"]
                if a_val != b_val:
                    n.append(f"{label} differs" if k == "hardware_id" else f"{label} {a_val} → {b_val}")
        notes.append("; ".join(n))
    rows["note"] = notes
    rows["only_in"] = [
        "A" if isinstance(x, str) and not isinstance(y, str) else ("B" if isinstance(y, str) and not isinstance(x, str) else "")
        for x, y in zip(joined["batch_size_a"], joined["batch_size_b"])
    ]
    return rows.reset_index()


SAMPLE_FILTERS: dict[str, str] = {
    "all": "all samples",
    "wrong": "wrong answers",
    "truncated": "truncated generations (finish_reason = length)",
    "wrong_or_truncated": "wrong or truncated",
}


def filter_samples(samples: pd.DataFrame, which: str) -> pd.DataFrame:
    """Samples filtered by one of :data:`SAMPLE_FILTERS` (unknown → all)."""
    correct = pd.to_numeric(col(samples, "correct"), errors="coerce")
    wrong = correct.notna() & (correct < 1.0)
    truncated = col(samples, "finish_reason").astype("object") == "length"
    mask = {
        "wrong": wrong,
        "truncated": truncated,
        "wrong_or_truncated": wrong | truncated,
    }.get(which)
    return samples if mask is None else samples[mask.fillna(False).astype(bool)]


def distinct(values: Sequence) -> list:
    """Sorted distinct non-null values (by text when they do not compare)."""
    vals = {v for v in values if not (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)))}
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)
