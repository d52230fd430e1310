"""The leaderboard web app (read-only): ``make dashboard`` or
``streamlit run dashboard/app.py -- --results <root>``.

The sidebar filters are declared here, once, so they keep their values across pages.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:  # `streamlit run` puts only this folder on the path
    sys.path.insert(0, _REPO)

import streamlit as st  # noqa: E402

from dashboard import ui  # noqa: E402

st.set_page_config(page_title="harness leaderboard", layout="wide")
ui.sidebar()
st.navigation(
    [
        st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", default=True),
        st.Page("views/pareto.py", title="Pareto front", icon=":material/scatter_plot:"),
        st.Page("views/variant.py", title="Variant samples", icon=":material/list_alt:"),
        st.Page("views/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
        st.Page("views/proving.py", title="Proving", icon=":material/function:"),
    ]
).run()
