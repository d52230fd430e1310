"""Variant: one cell's samples, with histograms and a filter to wrong or truncated answers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.charts import histogram
from dashboard.data import col, load_samples
from dashboard.tables import SAMPLE_FILTERS, ci_text, filter_samples


def _g(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{v:.3g}"


ctx = ui.get_ctx()
st.title("Variant samples")
ui.notices(ctx)

cells = ctx.filtered()  # every cell, failed ones too: their error is shown
if not ui.empty_state(ctx, cells):
    cells = cells.sort_values([c for c in ("task", "variant", "run_id") if c in cells.columns], kind="stable")
    cells = cells.assign(_id=col(cells, "run_id").astype(str) + "/" + col(cells, "cell_hash").astype(str))
    labels = {
        r["_id"]: f"{r.get('task')} · {r.get('variant')} · {r.get('status')} · run {r.get('run_id')} · {r.get('cell_hash')}"
        for _, r in cells.iterrows()
    }
    chosen = st.selectbox(
        "cell (task · variant · status · run · hash)", list(labels), format_func=labels.get, key="variant_cell"
    )
    cell = cells[cells["_id"] == chosen].iloc[0]

    if cell.get("status") == "error":
        st.error(f"This cell failed: {cell.get('error') or 'no error message recorded'}")

    m = st.columns(5)
    acc = cell.get("accuracy")
    m[0].metric("accuracy", "—" if pd.isna(acc) else f"{acc:.1%}", help=f"95 % interval {ci_text(cell.get('accuracy_ci95_low'), cell.get('accuracy_ci95_high'))}")
    m[1].metric("n", "—" if pd.isna(cell.get("n")) else int(cell.get("n")))
    tok = cell.get("output_tokens_mean")
    m[2].metric("mean output tokens", "—" if pd.isna(tok) else f"{tok:.1f}")
    lat = cell.get("latency_p50_s")
    m[3].metric("latency p50", "—" if pd.isna(lat) else f"{lat:.3g} s")
    tr = cell.get("truncation_rate")
    m[4].metric("truncated", "—" if pd.isna(tr) else f"{tr:.0%}")
    st.caption(f"model `{cell.get('model')}` · adapter `{cell.get('adapter')}` · params `{cell.get('params_json')}` · batch {cell.get('batch_size')}")

    samples = load_samples(ctx.root, str(cell.get("run_dir")), str(cell.get("run_id")), str(cell.get("cell_hash")))
    if samples.empty:
        st.info("No samples recorded for this cell.")
    else:
        which = st.radio("show", list(SAMPLE_FILTERS), format_func=SAMPLE_FILTERS.get, horizontal=True, key="variant_filter")
        shown = filter_samples(samples, which)
        st.caption(f"{len(shown)} of {len(samples)} samples; pick one below for its full prompt and output")
        columns = [
            "doc_id", "correct", "extracted_answer", "reference", "output_tokens", "finish_reason",
            "latency_s", "ttft_s", "input_tokens", "output_text",
        ]
        st.dataframe(
            shown[[c for c in columns if c in shown.columns]],
            hide_index=True,
            key="variant_samples",
            column_config={
                "latency_s": st.column_config.NumberColumn("latency (s)", format="%.3f"),
                "ttft_s": st.column_config.NumberColumn("TTFT (s)", format="%.3f"),
                "output_text": st.column_config.TextColumn("output", width="large"),
            },
        )
        h1, h2 = st.columns(2)
        h1.plotly_chart(histogram(shown, "output_tokens", "Output tokens"), key="hist_tokens")
        h2.plotly_chart(histogram(shown, "latency_s", "Latency", "s"), key="hist_latency")

        if not shown.empty:
            doc = st.selectbox("sample", col(shown, "doc_id").tolist(), key="variant_doc", format_func=lambda d: f"doc {d}")
            row = shown[col(shown, "doc_id") == doc].iloc[0]
            ok = row.get("correct")
            verdict = "ungraded" if pd.isna(ok) else ("correct" if ok >= 1 else "wrong")
            st.markdown(
                f"**{verdict}** · extracted `{row.get('extracted_answer')}` · reference `{row.get('reference')}` · "
                f"{row.get('output_tokens')} tokens · finish `{row.get('finish_reason')}` · "
                f"latency {_g(row.get('latency_s'))} s · {row.get('grade_reason') or ''}"
            )
            p, o = st.columns(2)
            p.markdown("**Prompt**")
            p.code(str(row.get("prompt_text") or ""), language=None, wrap_lines=True)
            o.markdown("**Output**")
            o.code(str(row.get("output_text") or ""), language=None, wrap_lines=True)
