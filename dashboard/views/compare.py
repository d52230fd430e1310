"""Compare: two runs side by side per (task, variant), deltas coloured, and the gate's verdict."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.data import col, run_fingerprint
from dashboard.tables import COMPARE_METRICS, compare_runs, default_compare_pair, distinct

ctx = ui.get_ctx()
st.title("Compare two runs")
ui.notices(ctx)


def _colour(delta: float, higher_better: bool, accuracy: bool) -> str:
    if pd.isna(delta) or abs(delta) < (0.005 if accuracy else 0.01):
        return ""
    good = (delta > 0) == higher_better
    return "color: #1a7f37; font-weight: 600" if good else "color: #cf222e; font-weight: 600"


def _styled(table: pd.DataFrame):
    """The comparison with readable headers, numbers formatted and deltas coloured."""
    names, fmt, colours = {}, {}, {}
    for m, (label, higher) in COMPARE_METRICS.items():
        acc = m == "accuracy"
        a, b, d = f"{label} A", f"{label} B", f"Δ {label}"
        names |= {f"{m}_a": a, f"{m}_b": b, f"{m}_delta": d}
        fmt[a] = fmt[b] = "{:.1%}" if acc else "{:.4g}"
        fmt[d] = (lambda v: f"{v * 100:+.1f} pt") if acc else "{:+.1%}"
        colours[d] = (higher, acc)
    names["only_in"] = "only in run"
    shown = table.rename(columns=names)
    styler = shown.style.format(fmt, na_rep="—")
    for c, (higher, acc) in colours.items():
        styler = styler.map(lambda v, h=higher, a=acc: _colour(v, h, a), subset=[c])
    return styler


@st.cache_data(show_spinner="Running the gate…", max_entries=16)
def _gate(baseline_dir: str, candidate_dir: str, fingerprint: str) -> dict:
    """The gate's verdict as plain values: ``available``, ``verdict``, ``exit_code``, ``markdown``
    or ``error`` (unusable input)."""
    del fingerprint
    try:
        gate = importlib.import_module("harness.gate")
    except ImportError:
        return {"available": False}
    run_gate = getattr(gate, "run_gate", None)
    if not callable(run_gate):
        return {"available": False}
    try:
        result = run_gate(baseline_dir, candidate_dir)
    except Exception as exc:  # noqa: BLE001 - GateInputError (exit 2) or a bug: never take the page down
        return {"available": True, "error": f"{type(exc).__name__}: {exc}"}
    markdown = result.markdown() if callable(getattr(result, "markdown", None)) else None
    return {
        "available": True,
        "verdict": str(getattr(result, "verdict", "")),
        "exit_code": getattr(result, "exit_code", None),
        "markdown": markdown,
    }


def gate_verdict(baseline_dir: str, candidate_dir: str) -> None:
    """Show the gate's verdict for A (baseline) → B (candidate), or say it is not available."""
    fingerprint = "/".join(run_fingerprint(Path(d)) for d in (baseline_dir, candidate_dir))
    out = _gate(baseline_dir, candidate_dir, fingerprint)
    if not out["available"]:
        st.info("Gate: not available in this build (`harness.gate` could not be imported).")
    elif "error" in out:
        st.warning(f"Gate: unusable input (exit 2): {out['error']}")
    else:
        verdict = "pass" if out["exit_code"] == 0 else "regression"
        show = st.success if out["exit_code"] == 0 else st.error
        show(f"Gate verdict: **{verdict}** (exit {out['exit_code']}), run A as baseline, run B as candidate.")
        if out.get("markdown"):
            with st.expander("Gate report", expanded=out["exit_code"] != 0):
                st.markdown(out["markdown"], unsafe_allow_html=True)


cells = ctx.filtered(skip=("run",))  # both runs are chosen here, the run filter does not apply
runs = distinct(col(cells, "run_id"))
if not ui.empty_state(ctx, cells):
    if len(runs) < 2:
        st.info(f"Comparing needs two runs; the filters leave {len(runs)}. {ui.MAKE_SOME}")
    else:
        # opens on the latest run and the latest earlier run of the same suite
        default_a, default_b = default_compare_pair(cells)
        suite_of = dict(zip(col(cells, "run_id"), col(cells, "suite")))

        def label(run: str) -> str:
            return f"{run} ({suite_of.get(run)})"

        left, right = st.columns(2)
        run_a = left.selectbox("run A (baseline)", runs, index=runs.index(default_a), format_func=label, key="compare_a")
        run_b = right.selectbox("run B (candidate)", runs, index=runs.index(default_b), format_func=label, key="compare_b")
        if suite_of.get(run_a) != suite_of.get(run_b):
            st.warning(f"Runs of different suites ({suite_of.get(run_a)} and {suite_of.get(run_b)}): "
                       "only the cells they share are compared.")
        a = cells[col(cells, "run_id") == run_a]
        b = cells[col(cells, "run_id") == run_b]
        table = compare_runs(a, b)
        st.caption(
            "Per (task, model, variant), repeats averaged. Δ accuracy in percentage points; other "
            "Δ as B / A − 1. Green: better, red: worse (beyond 0.5 pt / 1 %). Not a significance "
            "test: the gate below is."
        )
        notes = table[table["note"] != ""]
        if not notes.empty:
            parts = []
            for note, group in notes.groupby("note", sort=True):
                pairs = [f"{r.task}/{r.variant}" for r in group.itertuples()]
                more = f" and {len(pairs) - 4} more" if len(pairs) > 4 else ""
                parts.append(f"**{note}** for {', '.join(pairs[:4])}{more}")
            st.warning("Not like for like: " + "; ".join(parts) + ".")
        drop = ["note"] + (["model"] if table["model"].nunique() <= 1 else [])
        if "model" in drop and len(table):
            st.caption(f"model `{table['model'].iloc[0]}`")
        st.dataframe(_styled(table.drop(columns=drop)), hide_index=True, key="compare_table")
        dirs = dict(zip(col(cells, "run_id"), col(cells, "run_dir")))
        st.subheader("Gate")
        gate_verdict(str(dirs.get(run_a)), str(dirs.get(run_b)))
