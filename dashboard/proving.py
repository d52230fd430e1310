"""Proving cells on the dashboard (no Streamlit): pass@k against what a problem cost.

One point per ok proving cell: y = pass@k for the chosen ``k`` (from ``pass_at_k_json``), x =
output tokens per problem (all attempts: EconProver's token-level sampling cost) or energy per
problem. A ``cot_switch`` cascade has no pass@k; at ``k = n`` (its attempt budget) its share of
problems proved within the budget is the same quantity as an independent cell's pass@n (the
share of problems with a proved attempt), so it is plotted there only.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import plotly.graph_objects as go

__all__ = ["COSTS", "available_k", "pass_at_k_figure", "pass_at_k_points", "proving_cells"]

COSTS = {"tokens_per_problem": "output tokens per problem [tokens]", "energy_per_problem_j": "energy per problem [J]"}


def proving_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The ok proving cells."""
    if cells.empty or "cell_kind" not in cells.columns:
        return cells.iloc[0:0]
    ok = cells["status"] == "ok" if "status" in cells.columns else True
    return cells[(cells["cell_kind"] == "prove") & ok]


def _table(raw) -> dict[int, float]:
    try:
        return {int(k): float(v) for k, v in json.loads(raw).items() if v is not None}
    except (TypeError, ValueError):
        return {}


def available_k(cells: pd.DataFrame) -> list[int]:
    """Every ``k`` some proving cell reports (its ``pass_at_k_json`` keys, and the budget ``n`` of
    a cascade), sorted."""
    ks: set[int] = set()
    for _, row in proving_cells(cells).iterrows():
        ks.update(_table(row.get("pass_at_k_json")))
        if pd.notna(row.get("proved_within_budget")) and pd.notna(row.get("samples_per_doc")):
            ks.add(int(row["samples_per_doc"]))
    return sorted(ks)


def pass_at_k_points(cells: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per proving cell with a value at ``k``: task, variant, run_id, ``pass_at_k``,
    ``kind`` (``pass@k`` or ``within budget``), ``tokens_per_problem``, ``energy_per_problem_j``
    and ``energy_source``."""
    rows = []
    for _, row in proving_cells(cells).iterrows():
        value, kind = _table(row.get("pass_at_k_json")).get(k), "pass@k"
        if value is None and pd.notna(row.get("proved_within_budget")) and row.get("samples_per_doc") == k:
            value, kind = float(row["proved_within_budget"]), "within budget"
        problems = row.get("problems")
        if value is None or pd.isna(problems) or not problems:
            continue
        tokens, energy = row.get("output_tokens_total"), row.get("energy_j")
        rows.append({
            "task": row.get("task"), "variant": row.get("variant"), "run_id": row.get("run_id"),
            "pass_at_k": value, "kind": kind,
            "tokens_per_problem": float(tokens) / problems if pd.notna(tokens) else math.nan,
            "energy_per_problem_j": float(energy) / problems if pd.notna(energy) else math.nan,
            "energy_source": row.get("energy_source"),
        })
    return pd.DataFrame(rows, columns=["task", "variant", "run_id", "pass_at_k", "kind", "tokens_per_problem",
                                       "energy_per_problem_j", "energy_source"])


def pass_at_k_figure(points: pd.DataFrame, k: int, cost: str, title: str = "") -> go.Figure:
    """Scatter: x = ``cost`` (a key of :data:`COSTS`), y = pass@k (%), one marker per cell, its
    variant written beside it; a cascade's within-budget share drawn as a diamond."""
    fig = go.Figure()
    pts = points[points[cost].notna()]
    for kind, symbol in (("pass@k", "circle"), ("within budget", "diamond")):
        part = pts[pts["kind"] == kind]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part[cost], y=part["pass_at_k"] * 100, mode="markers+text", text=part["variant"],
            textposition="top center", marker={"symbol": symbol, "size": 11},
            name=f"pass@{k}" if kind == "pass@k" else f"proved within budget (n = {k}, cascade)",
            customdata=part[["run_id"]].to_numpy(),
            hovertemplate="<b>%{text}</b><br>%{y:.1f}%<br>%{x:.4g}<br>run %{customdata[0]}<extra></extra>",
        ))
    fig.update_layout(title=title, xaxis_title=COSTS[cost], yaxis_title=f"pass@{k} [%]", yaxis_range=[-2, 102],
                      legend={"orientation": "h"})
    return fig
