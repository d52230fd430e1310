"""Plotly figures (no Streamlit): the accuracy-vs-cost Pareto scatter, the metric-vs-depth curves
of depth-exit training cells and sample histograms."""

from __future__ import annotations

import html
from itertools import cycle

import pandas as pd
import plotly.graph_objects as go

from harness.results import COST_AXES

from dashboard.data import col
from dashboard.tables import ci_text, distinct

__all__ = ["pareto_figure", "front_markup", "depth_figure", "histogram", "axis_title", "METRIC_LABELS"]

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "pentagon", "hexagon", "star"]


def _short(model: object) -> str:
    text = str(model)
    return text.split(":", 1)[-1] if ":" in text else text


def axis_title(axis: str, note: str | None) -> str:
    a = COST_AXES[axis]
    title = f"{a.label} [{a.unit}]"
    return f"{title} — {note}" if note else title


def pareto_figure(
    points: pd.DataFrame,
    axis: str,
    *,
    title: str = "",
    note: str | None = None,
    log_x: bool = False,
    budget: float | None = None,
) -> go.Figure:
    """Scatter of ``points`` (from :func:`dashboard.tables.pareto_slice`): y = accuracy with its
    interval, x = ``cost``; colour = adapter, symbol = model; the front of each model drawn as a
    step line and its points ringed (not a slice's only variant: it has nothing to be compared
    with); hover shows the variant's name, params and run (no text labels: beside close points
    they overlap)."""
    pts = points[points["cost"].notna() & points["accuracy"].notna()]
    if log_x:
        pts = pts[pts["cost"] > 0]
    fig = go.Figure()
    adapters = distinct(col(pts, "adapter").astype("object").fillna("—"))
    models = distinct(col(pts, "model").astype("object").fillna("—"))
    colour = dict(zip(adapters, cycle(COLOURS)))
    symbol = dict(zip(models, cycle(SYMBOLS)))
    unit = COST_AXES[axis].unit
    hover = (
        "<b>%{customdata[0]}</b> (%{customdata[1]})<br>model: %{customdata[2]}<br>"
        "params: %{customdata[3]}<br>run: %{customdata[4]}<br>"
        "accuracy: %{y:.1%} %{customdata[5]}<br>"
        f"cost: %{{x:.4g}} {unit}<br>energy source: %{{customdata[6]}}<extra></extra>"
    )
    pts = pts.assign(
        _adapter=col(pts, "adapter").astype("object").fillna("—"),
        _model=col(pts, "model").astype("object").fillna("—"),
    )
    for (adapter, model), g in pts.groupby(["_adapter", "_model"], sort=True):
        acc = g["accuracy"]
        up = (pd.to_numeric(col(g, "accuracy_ci95_high"), errors="coerce") - acc).clip(lower=0)
        down = (acc - pd.to_numeric(col(g, "accuracy_ci95_low"), errors="coerce")).clip(lower=0)
        custom = list(
            zip(
                col(g, "variant").astype("object").fillna("—"),
                g["_adapter"],
                g["_model"],
                col(g, "params_json").astype("object").fillna("{}"),
                col(g, "run_id").astype("object").fillna("—"),
                [ci_text(lo, hi) for lo, hi in zip(col(g, "accuracy_ci95_low"), col(g, "accuracy_ci95_high"))],
                col(g, "energy_source").astype("object").fillna("—"),
            )
        )
        name = adapter if len(models) == 1 else f"{adapter} · {_short(model)}"
        fig.add_trace(
            go.Scatter(
                x=g["cost"],
                y=acc,
                mode="markers",  # variant names on hover: labels beside close points overlap
                name=name,
                legendgroup=adapter,
                marker={"color": colour[adapter], "symbol": symbol[model], "size": 11},
                error_y={"type": "data", "symmetric": False, "array": up.fillna(0), "arrayminus": down.fillna(0), "thickness": 1.2, "width": 4},
                customdata=custom,
                hovertemplate=hover,
            )
        )
    front = pts[pts["on_front"].astype(bool)]
    for model, g in front.groupby("_model", sort=True):
        g = g.sort_values(["cost", "accuracy"], ascending=[True, False])
        fig.add_trace(
            go.Scatter(
                x=g["cost"],
                y=g["accuracy"],
                mode="lines",
                line={"shape": "hv", "color": "#444", "dash": "dash", "width": 1.5},
                name="front" if len(models) == 1 else f"front · {_short(model)}",
                hoverinfo="skip",
                legendgroup="front",
            )
        )
    if not front.empty:
        fig.add_trace(
            go.Scatter(
                x=front["cost"],
                y=front["accuracy"],
                mode="markers",
                name="on the front",
                marker={"symbol": "circle-open", "size": 20, "color": "#111", "line": {"width": 2}},
                hoverinfo="skip",
                legendgroup="front",
            )
        )
    if budget is not None and not pts.empty and budget < pts["cost"].max():
        fig.add_vline(x=budget, line_dash="dot", line_color="#888", annotation_text="budget", annotation_position="top")
    fig.update_layout(
        title=title,
        xaxis_title=axis_title(axis, note),
        yaxis_title="accuracy (95 % interval)",
        yaxis={"tickformat": ".0%", "range": [-0.05, 1.05]},
        legend={"title": "adapter · model" if len(models) > 1 else "adapter"},
        margin={"l": 60, "r": 20, "t": 60, "b": 60},
        height=520,
    )
    if log_x:
        fig.update_xaxes(type="log")
    if unit == "bytes":
        fig.update_xaxes(tickformat="~s")
    return fig


def front_markup(points: pd.DataFrame, axis: str) -> str:
    """The front as an HTML table with stable data attributes (``data-axis`` and ``data-count`` on
    the table, ``data-variant``/``data-run``/``data-model`` on each row) for people and browser
    tests. A slice whose only variant has the cost gets no front: one ``sole-row`` saying "only
    variant in this slice" (the table's ``data-sole`` is ``1``)."""
    front = points[points["on_front"].astype(bool)].sort_values(["cost", "accuracy"], ascending=[True, False])
    sole = points[col(points, "sole").fillna(False).astype(bool)] if "sole" in points.columns else points.iloc[:0]
    unit = COST_AXES[axis].unit
    rows = []
    for _, r in front.iterrows():
        variant = html.escape(str(r.get("variant")))
        run = html.escape(str(r.get("run_id")))
        model = html.escape(str(r.get("model")))
        acc = r.get("accuracy")
        rows.append(
            f'<tr class="front-row" data-variant="{variant}" data-run="{run}" data-model="{model}">'
            f"<td>{variant}</td><td>{html.escape(str(r.get('adapter')))}</td><td>{html.escape(_short(r.get('model')))}</td>"
            f"<td>{acc:.1%}</td><td>{r['cost']:.4g} {html.escape(unit)}</td><td>{run}</td></tr>"
        )
    alone = []
    for variant in distinct(col(sole, "variant").astype("object")):
        name = html.escape(str(variant))
        alone.append(f'<tr class="sole-row" data-variant="{name}"><td colspan="6">{name}: only variant in this '
                     "slice (nothing to compare it with, so no front)</td></tr>")
    body = "".join(rows + alone) or '<tr><td colspan="6">no cell has this cost</td></tr>'
    return (
        f'<table class="pareto-front" data-axis="{html.escape(axis)}" data-count="{len(rows)}" '
        f'data-sole="{1 if alone and not rows else 0}">'
        "<thead><tr><th>variant</th><th>adapter</th><th>model</th><th>accuracy</th>"
        f"<th>{html.escape(COST_AXES[axis].label)}</th><th>run</th></tr></thead><tbody>{body}</tbody></table>"
    )


METRIC_LABELS = {"accuracy": "accuracy", "f1": "F1", "mcc": "MCC (Matthews)", "pearson": "Pearson r", "spearman": "Spearman ρ"}
"""Display names of task metrics (``task_metric`` values and ``counter_<metric>_depth_<k>``)."""


def depth_figure(curves: pd.DataFrame, *, title: str = "") -> go.Figure | None:
    """The task metric against the exit depth, from :func:`dashboard.tables.depth_curves`: one
    line per curve (``line``: a variant's trained model), one panel per (task, metric); the
    deepest exit (the cell's headline figure) ringed. None when there is no point to draw."""
    if curves is None or curves.empty:
        return None
    from plotly.subplots import make_subplots

    panels = list(dict.fromkeys(zip(curves["task"].astype(str), curves["metric"].astype(str))))
    several_metrics = curves["metric"].nunique() > 1
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=(  # one panel: the figure's title says the task
            [f"{t} · {METRIC_LABELS.get(m, m)}" if several_metrics else t for t, m in panels] if len(panels) > 1 else None
        ),
        horizontal_spacing=0.08 if len(panels) > 1 else 0.0,
    )
    colour = dict(zip(distinct(curves["line"]), cycle(COLOURS)))
    shown: set[str] = set()
    hover = (
        "<b>%{customdata[0]}</b> (%{customdata[1]})<br>exit after %{x} block(s)<br>"
        "%{customdata[2]}: %{y:.4g}<br>%{customdata[3]}run: %{customdata[4]}<extra></extra>"
    )
    for i, (task, metric) in enumerate(panels, start=1):
        part = curves[(curves["task"].astype(str) == task) & (curves["metric"].astype(str) == metric)]
        label = METRIC_LABELS.get(metric, metric)
        for line, g in part.groupby("line", sort=True):
            g = g.sort_values("depth")
            custom = list(
                zip(
                    g["variant"].astype("object").fillna("—"),
                    g["adapter"].astype("object").fillna("—"),
                    [label] * len(g),
                    ["deepest exit = the cell's headline figure<br>" if f else "" for f in g["full_depth"]],
                    g["run_id"].astype("object").fillna("—"),
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=g["depth"],
                    y=g["value"],
                    mode="lines+markers",
                    name=str(line),
                    legendgroup=str(line),
                    showlegend=line not in shown,
                    line={"color": colour[line], "width": 2},
                    marker={"color": colour[line], "size": 9},
                    customdata=custom,
                    hovertemplate=hover,
                ),
                row=1,
                col=i,
            )
            shown.add(line)
            full = g[g["full_depth"].astype(bool)]
            fig.add_trace(
                go.Scatter(
                    x=full["depth"],
                    y=full["value"],
                    mode="markers",
                    name="deepest exit (cell's figure)",
                    legendgroup="full_depth",
                    showlegend="full_depth" not in shown,
                    marker={"symbol": "circle-open", "size": 18, "color": "#111", "line": {"width": 2}},
                    hoverinfo="skip",
                ),
                row=1,
                col=i,
            )
            shown.add("full_depth")
        depths = sorted({int(d) for d in part["depth"]})
        fig.update_xaxes(
            title_text="exit depth k [transformer blocks before the head]",
            tickmode="array", tickvals=depths, range=[min(depths) - 0.5, max(depths) + 0.5], row=1, col=i,
        )
        fig.update_yaxes(title_text=f"{label} at exit k", tickformat=".0%" if metric == "accuracy" else ".2f", row=1, col=i)
    fig.update_layout(
        title=title,
        legend={"title": "variant (one trained model each)"},
        margin={"l": 60, "r": 20, "t": 80, "b": 60},
        height=440,
    )
    return fig


def histogram(samples: pd.DataFrame, column: str, title: str, unit: str = "") -> go.Figure:
    """Histogram of one sample column, stacked by correctness."""
    values = pd.to_numeric(col(samples, column), errors="coerce")
    correct = pd.to_numeric(col(samples, "correct"), errors="coerce")
    fig = go.Figure()
    for label, mask, colour in (
        ("correct", correct >= 1.0, "#2ca02c"),
        ("wrong", correct < 1.0, "#d62728"),
        ("ungraded", correct.isna(), "#7f7f7f"),
    ):
        if mask.any():
            fig.add_trace(go.Histogram(x=values[mask], name=label, marker_color=colour, nbinsx=30, bingroup=1))
    fig.update_layout(
        barmode="stack",
        title=title,
        xaxis_title=f"{column}" + (f" [{unit}]" if unit else ""),
        yaxis_title="samples",
        height=320,
        margin={"l": 50, "r": 10, "t": 50, "b": 50},
    )
    return fig
