"""Proving: pass@k of proving cells against tokens or energy per problem, k chosen in the sidebar."""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.proving import (
    COSTS,
    available_k,
    pass_at_k_figure,
    pass_at_k_points,
    proving_cells,
)
from dashboard.tables import distinct

ctx = ui.get_ctx()
st.title("Proving: pass@k against cost")
ui.notices(ctx)

cells = proving_cells(ctx.cells)
if not ui.empty_state(ctx, ctx.cells):
    if cells.empty:
        st.info("No proving cells here. Make some with `make bench SUITE=proving`.")
    else:
        ks = available_k(cells)
        k = st.sidebar.selectbox("pass@k: k", ks, index=0, key="proving_k",
                                 help="k ≤ n attempts per problem; a cot_switch cascade shows at k = n only")
        left, right = st.columns(2)
        task = left.selectbox("task", distinct(cells["task"]), key="proving_task")
        cost = right.selectbox("cost", list(COSTS), format_func=COSTS.get, key="proving_cost")
        points = pass_at_k_points(cells[cells["task"] == task], k)
        if points.empty:
            st.warning(f"No cell of {task} reports pass@{k}.")
        else:
            st.plotly_chart(pass_at_k_figure(points, k, cost, title=f"{task}: pass@{k}"), key="proving_chart")
            st.caption("pass@k: the unbiased estimator (Chen et al. 2021, arXiv 2107.03374) averaged over problems. "
                       "Tokens per problem count every attempt's output tokens (EconProver's sampling cost); "
                       "energy is the generation windows' (checker time excluded).")
            st.dataframe(points, hide_index=True, key="proving_points")
