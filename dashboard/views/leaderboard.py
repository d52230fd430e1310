"""Leaderboard: one sortable table per (suite, task), variants as rows; CSV download."""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.data import col
from dashboard.tables import LEADERBOARD_COLUMNS, distinct, leaderboard_rows

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
        "Cells at different batch sizes or hardware are separate rows, never merged."
    )
    number = {
        "variant": st.column_config.TextColumn("variant", pinned=True),
        "n": st.column_config.NumberColumn("n", format="%d"),
        "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
        "truncation_rate": st.column_config.NumberColumn("truncated", format="percent"),
        "batch_size": st.column_config.NumberColumn("batch", format="%d"),
    }
    for name in ("output_tokens_mean", "throughput_tok_per_s", "peak_rss_mib", "peak_allocated_mib"):
        number[name] = st.column_config.NumberColumn(LEADERBOARD_COLUMNS[name], format="%.1f")
    for name in ("latency_p50_s", "latency_p90_s", "ttft_p50_s", "energy_per_token_j", "energy_per_correct_j"):
        number[name] = st.column_config.NumberColumn(LEADERBOARD_COLUMNS[name], format="%.4g")
    for name in ("metric_f1", "metric_mcc", "metric_pearson", "metric_spearman"):  # NLU task metrics
        number[name] = st.column_config.NumberColumn(LEADERBOARD_COLUMNS[name], format="%.3f")

    groups = cells.assign(_suite=col(cells, "suite").fillna("—"), _task=col(cells, "task").fillna("—"))
    for suite in distinct(groups["_suite"]):
        for task in distinct(groups.loc[groups["_suite"] == suite, "_task"]):
            part = groups[(groups["_suite"] == suite) & (groups["_task"] == task)]
            rows = leaderboard_rows(part)
            # columns that never vary within the table are said once in the header instead
            constant = [
                c for c in ("model", "hardware", "batch_size")
                if c in rows.columns and rows[c].astype("object").nunique(dropna=False) <= 1 and len(rows) > 1
            ]
            same = " · ".join(f"{LEADERBOARD_COLUMNS[c]} {rows[c].iloc[0]}" for c in constant)
            st.subheader(f"{suite} · {task}")
            if same:
                st.caption(same)
            show = rows.drop(columns=constant)
            config = {c: number.get(c, LEADERBOARD_COLUMNS.get(c, c)) for c in show.columns}
            for c in show.columns:
                if c.startswith("counter_"):  # the adapter's own counters
                    label = c.removeprefix("counter_").replace("_", " ")
                    config[c] = st.column_config.NumberColumn(f"{label} (counter)", format="%.4g", help=c)
            st.dataframe(
                show,
                hide_index=True,
                column_config=config,
                key=f"leaderboard_{suite}_{task}",
            )

    export = cells.drop(columns=[c for c in ("run_dir",) if c in cells.columns])
    st.download_button(
        "Download CSV (stored SI columns)",
        data=lambda: export.to_csv(index=False).encode("utf-8"),
        file_name="leaderboard.csv",
        mime="text/csv",
        key="leaderboard_csv",
        on_click="ignore",
    )
