"""Leaderboard: one sortable table per (suite, task), variants as rows; CSV download."""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.data import col
from dashboard.tables import LEADERBOARD_COLUMNS, distinct, leaderboard_layout, leaderboard_optional, leaderboard_rows

ctx = ui.get_ctx()
st.title("Leaderboard")
ui.notices(ctx)

failed = ctx.filtered()
failed = failed[col(failed, "status") == "error"]
if not failed.empty:
    st.error(f"{len(failed)} cell(s) failed; their error is recorded with the cell.")
    with st.expander("Failed cells", expanded=len(failed) <= 3):
        st.dataframe(
            failed[[c for c in ("suite", "task", "variant", "model", "run_id", "error") if c in failed.columns]],
            hide_index=True,
            key="failed_cells",
        )

cells = ctx.cells
if not ui.empty_state(ctx, cells):
    st.caption(
        f"{len(cells)} cell(s), {ui.VIEWS[ctx.view]}. Click a column header to sort. Accuracy with its "
        "Wilson 95 % interval; energy names its source (*estimate* = modelled, not measured). "
        "Cells at different batch sizes, limits or hardware are separate rows, never merged."
    )
    number = {
        "variant": st.column_config.TextColumn("variant", pinned=True),
        "n": st.column_config.NumberColumn("n", format="%d", width="small"),
        "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
        "truncation_rate": st.column_config.NumberColumn("truncated", format="percent"),
        "batch_size": st.column_config.NumberColumn("batch", format="%d", width="small"),
        "limit_text": st.column_config.TextColumn("limit", width="small", help="samples per task; all = the full split"),
    }
    for name in ("output_tokens_mean", "throughput_tok_per_s", "peak_rss_mib", "peak_allocated_mib"):
        number[name] = st.column_config.NumberColumn(LEADERBOARD_COLUMNS[name], format="%.1f")
    for name in ("latency_p50_s", "latency_p90_s", "ttft_p50_s", "energy_per_sample_j", "energy_per_token_j",
                 "energy_per_correct_j", "warmup_time_s"):
        number[name] = st.column_config.NumberColumn(LEADERBOARD_COLUMNS[name], format="%.4g")
    for name in ("metric_f1", "metric_mcc", "metric_pearson", "metric_spearman"):  # NLU task metrics
        number[name] = st.column_config.NumberColumn(LEADERBOARD_COLUMNS[name], format="%.3f")

    def label(column: str) -> str:
        if column.startswith("counter_"):
            return f"{column.removeprefix('counter_').replace('_', ' ')} (counter)"
        return LEADERBOARD_COLUMNS.get(column, column)

    # the default columns fit a 1400 px window beside the sidebar; the others are one pick away
    optional = leaderboard_optional(leaderboard_rows(cells))
    extra = st.multiselect(
        "more columns", optional, format_func=label, key="leaderboard_extra", placeholder="add columns",
        help="p90, TTFT, energy per token and per correct answer, cold start, GPU memory, the "
        "adapter's counters, params, run",
    )

    groups = cells.assign(_suite=col(cells, "suite").fillna("—"), _task=col(cells, "task").fillna("—"))
    for suite in distinct(groups["_suite"]):
        for task in distinct(groups.loc[groups["_suite"] == suite, "_task"]):
            part = groups[(groups["_suite"] == suite) & (groups["_task"] == task)]
            rows = leaderboard_rows(part)
            # settings that never vary within the table are said once in its caption instead
            shown, constant = leaderboard_layout(rows, extra, all_runs=ctx.view == "all")
            same = " · ".join(f"{LEADERBOARD_COLUMNS[c]} {rows[c].iloc[0]}" for c in constant)
            st.subheader(f"{suite} · {task}")
            if same:
                st.caption(same)
            show = rows[shown]
            config = {c: number.get(c, label(c)) for c in show.columns}
            for c in show.columns:
                if c.startswith("counter_"):  # the adapter's own counters
                    config[c] = st.column_config.NumberColumn(label(c), format="%.4g", help=c)
            st.dataframe(
                show,
                hide_index=True,
                column_config=config,
                key=f"leaderboard_{suite}_{task}",
            )

    export = cells.drop(columns=[c for c in ("run_dir", "limit_text") if c in cells.columns])
    st.download_button(
        "Download CSV (stored SI columns)",
        data=lambda: export.to_csv(index=False).encode("utf-8"),
        file_name="leaderboard.csv",
        mime="text/csv",
        key="leaderboard_csv",
        on_click="ignore",
    )
