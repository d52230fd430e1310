"""What every page shares: the sidebar filters (declared once in the entry script so they keep
their values across pages), the filtered context, notices and empty states."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.data import FILTERS, Loaded, apply_filters, best_per_variant, col, load, results_root
from dashboard.tables import distinct

__all__ = ["Context", "sidebar", "get_ctx", "notices", "empty_state", "VIEWS", "MAKE_SOME"]

CTX_KEY = "_dashboard_ctx"
VIEWS = {"best": "best per variant", "all": "all runs"}
MAKE_SOME = (
    "Make some with `make bench SUITE=reasoning` (add `LIMIT=2` for a quick two-sample run, "
    "`RESULTS=<dir>` for another root), then refresh this page."
)


@dataclass(frozen=True)
class Context:
    """The loaded results, the filter choices and the cells they select."""

    loaded: Loaded
    chosen: dict[str, list]
    view: str  # a key of VIEWS

    @property
    def root(self) -> Path:
        return self.loaded.root

    def filtered(self, skip: tuple[str, ...] = ()) -> pd.DataFrame:
        """All cells (any status, every run) that pass the filters, less those in ``skip``."""
        chosen = {k: v for k, v in self.chosen.items() if k not in skip}
        return apply_filters(self.loaded.cells, chosen)

    @property
    def cells(self) -> pd.DataFrame:
        """Filtered cells as the chosen view shows them: ok cells, best per variant, or every cell."""
        cells = self.filtered()
        return best_per_variant(cells) if self.view == "best" else cells


def sidebar(root: Path | str | None = None) -> Context:
    """Load the results root and render the shared filters in the sidebar."""
    loaded = load(results_root() if root is None else root)
    cells = loaded.cells
    with st.sidebar:
        st.caption(f"Results root: `{loaded.root}`")
        chosen: dict[str, list] = {}
        for label, column in FILTERS.items():
            options = distinct(col(cells, column))
            key = f"filter_{column}"
            if key in st.session_state:  # a value that vanished from the data is dropped
                st.session_state[key] = [v for v in st.session_state[key] if v in options]
            chosen[label] = st.multiselect(label, options, key=key, placeholder="all")
        view = st.radio(
            "Rows", list(VIEWS), format_func=VIEWS.get, key="view", horizontal=True,
            help="best per variant: the most accurate ok cell of each variant and setting (same "
            "task version, limit, model, hardware, batch size: cells at other limits are rows of "
            "their own; ties: larger n, then latest run); all runs: every cell, failed ones included.",
        )
        st.button("Reload results", help="Re-read files that changed (a refresh does the same).")
    ctx = Context(loaded=loaded, chosen=chosen, view=view)
    st.session_state[CTX_KEY] = ctx
    return ctx


def get_ctx() -> Context:
    """The context the entry script built for this run (built here when a page runs alone)."""
    ctx = st.session_state.get(CTX_KEY)
    return ctx if isinstance(ctx, Context) else sidebar()


def notices(ctx: Context) -> None:
    """Runs left out (another schema MAJOR) and files skipped while reading."""
    for err in ctx.loaded.errors:
        st.error(f"A run was left out: {err}")
    if ctx.loaded.notes:
        with st.expander(f"{len(ctx.loaded.notes)} results file(s) skipped"):
            for note in ctx.loaded.notes:
                st.text(note)


def empty_state(ctx: Context, cells: pd.DataFrame | None = None) -> bool:
    """Say why there is nothing to show (True) or do nothing (False)."""
    if ctx.loaded.empty:
        st.info(f"No results yet under `{ctx.root}`. {MAKE_SOME}")
        return True
    if (ctx.cells if cells is None else cells).empty:
        if ctx.view == "best" and not ctx.filtered().empty:
            st.warning("No successful cell matches the filters (switch to *all runs* to see failed ones).")
        else:
            st.warning("No cells match the filters.")
        return True
    return False
