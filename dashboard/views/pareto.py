"""Pareto: accuracy against a chosen cost within one (task, hardware, batch size) slice; below it,
for training cells with depth exits (``sorted_depth``), the task metric against the exit depth."""

from __future__ import annotations

import streamlit as st

from harness.results import COST_AXES
from harness.results.summary import front_axis

from dashboard import ui
from dashboard.charts import METRIC_LABELS, depth_figure, front_markup, pareto_figure
from dashboard.data import col, limit_order, ok_cells
from dashboard.tables import axis_energy_note, best_within, depth_curves, distinct, pareto_slice

ctx = ui.get_ctx()
st.title("Pareto front")
ui.notices(ctx)

cells = ok_cells(ctx.cells)
if not ui.empty_state(ctx, cells):
    # one slice at a time: cells at other batch sizes or on other hardware never share a front
    left, mid, right = st.columns(3)
    task = left.selectbox("task", distinct(col(cells, "task")), key="pareto_task")
    in_task = cells[col(cells, "task") == task]
    hardware = mid.selectbox("hardware", distinct(col(in_task, "hardware")), key="pareto_hardware")
    in_hw = in_task[col(in_task, "hardware") == hardware]
    batch = right.selectbox("batch size", distinct(col(in_hw, "batch_size")), key="pareto_batch")
    sliced = in_hw[col(in_hw, "batch_size") == batch]
    limits = limit_order(distinct(col(sliced, "limit_text")))  # "all" = the full split (no limit)
    limit = None
    if len(limits) > 1:  # accuracies over different sample sets do not share a front either
        limit = st.selectbox("samples per task (limit)", limits, index=len(limits) - 1, key="pareto_limit")
        sliced = sliced[col(sliced, "limit_text") == limit]

    axes = list(COST_AXES)
    default_axis = front_axis(sliced) or axes[0]
    a1, a2 = st.columns([3, 1])
    axis = a1.selectbox(
        "cost axis", axes, index=axes.index(default_axis), format_func=lambda a: COST_AXES[a].label,
        key="pareto_axis",
    )
    log_x = a2.toggle("log x", key="pareto_log_x")

    points = pareto_slice(sliced, axis)
    plotted = points[points["cost"].notna() & points["accuracy"].notna()]
    note = axis_energy_note(points, axis)

    budget = None
    if not plotted.empty:
        costs = sorted(set(plotted["cost"].tolist()))
        unit = COST_AXES[axis].unit
        budget = st.select_slider(
            "cost budget: best accuracy within this cost",
            options=costs,
            value=costs[-1],
            format_func=lambda c: f"{c:.4g} {unit}",
            key=f"pareto_budget_{axis}_{task}_{hardware}_{batch}",
        )
        best = best_within(plotted, budget)
        if best is not None:
            st.markdown(
                f"Within **{budget:.4g} {unit}**: best accuracy **{best['accuracy']:.1%}** by "
                f"`{best['variant']}` ({best['adapter']}, run `{best['run_id']}`) at {best['cost']:.4g} {unit}."
            )

    title = f"{task} · {hardware} · batch {batch}" + (f" · limit {limit}" if limit is not None else "")
    fig = pareto_figure(points, axis, title=title, note=note, log_x=log_x, budget=budget)
    if plotted.empty:
        st.warning(f"No cell in this slice has {COST_AXES[axis].label.lower()}; pick another cost axis.")
    else:
        missing = len(points) - len(plotted)
        if missing:
            st.caption(f"{missing} cell(s) without {COST_AXES[axis].label.lower()} are not plotted.")
        if note and "estimate" in note:
            st.caption(f"Energy here is a **{note}**: a model of power × time, not a meter reading.")
        st.plotly_chart(
            fig,
            key="pareto_chart",
            config={"toImageButtonOptions": {"format": "png", "filename": "pareto", "scale": 2}, "displaylogo": False},
        )

    alone = not plotted.empty and not points["on_front"].any() and points["sole"].any()
    st.subheader("Only variant in this slice" if alone else "On the front")
    with st.container(key="pareto-front"):
        st.markdown(front_markup(points, axis), unsafe_allow_html=True)
    st.caption(
        f"Front: cells not dominated in (accuracy ↑, {COST_AXES[axis].label.lower()} ↓) among "
        "the same model in this slice (ties kept), by `harness.results.pareto_front`, the same "
        "function as the CLI summary and the gate. A slice's only variant has nothing to be "
        "compared with: it is not marked as on the front. Hover a point for its variant."
    )

    st.download_button(
        "Download chart (HTML, interactive, works offline)",
        data=lambda: fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8"),
        file_name=f"pareto_{task}_{axis}.html",
        mime="text/html",
        key="pareto_html",
        on_click="ignore",
    )
    st.caption(
        "PNG: use the camera button in the chart's toolbar. (Server-side PNG export needs kaleido, "
        "which drives a Chrome of its own; this app does not depend on it.)"
    )

    # depth exits (SortedNet/SoFT, `sorted_depth`): one trained model, its metric at every exit
    curves = depth_curves(sliced)
    depth_fig = depth_figure(curves, title=title)
    if depth_fig is not None:
        st.subheader("Depth curves")
        metrics = ", ".join(METRIC_LABELS.get(m, m) for m in distinct(curves["metric"]))
        st.caption(
            f"Fine-tuning cells that report a metric per depth exit (`counter_<metric>_depth_<k>`). "
            f"**x**: exit depth k, the number of transformer blocks run before the shared head (a "
            f"count). **y**: the task metric ({metrics}) on this cell's validation documents at that "
            "exit (accuracy as a percentage). Each line is **one trained model evaluated at several "
            "exits**, not separate trainings; the ringed point, its deepest exit, is the cell's own "
            "figure (leaderboard, front above)."
        )
        st.plotly_chart(
            depth_fig,
            key="depth_chart",
            config={"toImageButtonOptions": {"format": "png", "filename": "depth_curves", "scale": 2}, "displaylogo": False},
        )
        with st.expander("Depth points (table)"):
            table = curves.pivot_table(index=["line", "metric"], columns="depth", values="value", aggfunc="first")
            table.columns = [f"depth {d}" for d in table.columns]
            st.dataframe(table.reset_index(), hide_index=True, key="depth_points")
