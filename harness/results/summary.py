"""The terminal summary of cells (rich): one row per cell, 80 columns wide.

Stored values stay in SI units; display-only conversion lives in :mod:`harness.results.display`.
Design of the table (issue 19): variant names are never cut (the column does not wrap); the energy
is per sample, the cost the Pareto front uses; its source is a short code column (``cc``, ``rapl``,
``nv``...) spelled out once in a footnote; truncation rate and window flags (``flag_*`` columns)
and τ² database mismatches show when the cells have them (null-safe: older files lack them);
errors are numbered and printed under the table. ``wide=True`` (``harness summary --wide``) adds
the totals (energy, output tokens, decode time) and more timing columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
from rich.console import Group
from rich.text import Text

from harness.results.display import MISSING, energy_source_code, energy_source_legend, format_accuracy, format_energy
from harness.results.display import as_number as num
from harness.results.display import as_text as text
from harness.results.display import format_seconds
from harness.results.fit_table import FitColumn, FitTable
from harness.results.pareto import COST_AXES, DEFAULT_GROUP_COLS, pareto_front, sole_variant
from harness.results.spread import repeat_spread

__all__ = ["summary_table", "spread_table", "front_axis", "with_energy_per_sample", "format_seconds", "format_energy", "format_accuracy",
           "FLAGS"]

FLAGS: tuple[tuple[str, str, str], ...] = (
    ("flag_interference", "I", "other load during the window: costs not comparable"),
    ("flag_energy_disagree", "E", "NVML energy counter and power integral disagree"),
    ("flag_short_window", "S", "window shorter than the energy counter's update period"),
    ("flag_counter_reset", "R", "energy counter reset during the window"),
)
"""Boolean cell columns shown as one-letter marks in the ``flags`` column: ``(column, mark, meaning)``."""

# NLU task metrics besides accuracy (schema 1.2), shown in a "task metrics" column when present
_TASK_METRICS = (("metric_f1", "F1"), ("metric_mcc", "MCC"), ("metric_pearson", "r"), ("metric_spearman", "ρ"))


def _task_metrics_text(row: pd.Series) -> str:
    parts = [f"{label} {num(row[c]):.3f}" for c, label in _TASK_METRICS if c in row.index and num(row[c]) is not None]
    return " ".join(parts) or MISSING


def _has_values(df: pd.DataFrame, col: str) -> bool:
    return col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any()


def _true(v: Any) -> bool:
    return v is not None and v is not pd.NA and not (isinstance(v, float) and v != v) and bool(v)


def with_energy_per_sample(df: pd.DataFrame) -> pd.DataFrame:
    """``energy_per_sample_j`` filled in as ``energy_j / n`` (its definition,
    :func:`harness.core.rows.energy_ratios`) where it is null: files written before schema 1.1
    lack it."""
    if "energy_j" not in df.columns or "n" not in df.columns:
        return df
    n = pd.to_numeric(df["n"], errors="coerce")
    derived = pd.to_numeric(df["energy_j"], errors="coerce") / n.where(n > 0)
    derived = derived.astype("float64")
    if "energy_per_sample_j" not in df.columns:
        return df.assign(energy_per_sample_j=derived)
    stored = pd.to_numeric(df["energy_per_sample_j"], errors="coerce").astype("float64")
    return df.assign(energy_per_sample_j=stored.fillna(derived))


def front_axis(cells_df: pd.DataFrame) -> str | None:
    """The cost axis the summary's front uses: energy per sample (what a problem costs) when any
    ok cell has it, else energy per token, else latency p50, else None."""
    ok = cells_df[cells_df["status"] == "ok"] if "status" in cells_df.columns else cells_df
    for name in ("energy_per_sample_j", "energy_per_token_j", "latency_p50_s"):
        if _has_values(ok, COST_AXES[name].column):
            return name
    return None


def _distinct(df: pd.DataFrame, col: str) -> int:
    return df[col].nunique(dropna=False) if col in df.columns else 0


def _short_model(ref: Any) -> str:
    """``org/name@rev`` → ``name@rev``: the table's model column (the full id is in the files)."""
    s = text(ref) or MISSING
    return s.rsplit("/", 1)[-1] if not s.endswith((".gguf", "/")) else s


def _count(v: Any) -> str:
    x = num(v)
    return MISSING if x is None else f"{x:.0f}"


def _pct(v: Any) -> str:
    x = num(v)
    return MISSING if x is None else f"{x * 100:.1f}%"


def _pct0(v: Any) -> str:
    x = num(v)
    return MISSING if x is None else f"{x * 100:.0f}%"


def _energy(v: Any) -> str:
    return format_energy(v)


def _tokens(v: Any) -> str:
    x = num(v)
    return MISSING if x is None else f"{x:.1f}"


def _rate(v: Any) -> str:
    x = num(v)
    return MISSING if x is None else f"{x:.3g}"


@dataclass
class _Col:
    header: str
    value: Callable[[pd.Series], str]
    justify: str = "right"
    keep: bool = False  # a name: never wrapped or cut
    wrap_first: bool = False  # narrowed first when the table is too wide


def _flags_text(row: pd.Series) -> str:
    return "".join(mark for col, mark, _ in FLAGS if col in row.index and _true(row[col]))


def summary_table(cells_df: pd.DataFrame, title: str | None = "Results", wide: bool = False):
    """The summary of ``cells_df`` (rows of :func:`harness.results.read_cells`) for a terminal.

    One row per cell (task × variant; run, model, batch size and repeat shown when they vary). A
    ``✓`` after the variant marks the Pareto front of accuracy against energy per sample in its
    model × task × hardware × batch size × limit slice (energy per token, then latency p50, when no
    cell has it; only ``status == "ok"`` cells compete; the only variant of a slice gets no ✓,
    a footnote says so). Columns: n; accuracy % with its 95 %
    interval (a failed cell shows ``error [k]`` there, its message under the table); task metrics
    (NLU) when present; mean output tokens; truncation rate (share of samples that hit the token
    cap) when present; latency p50; energy per sample (``J/sample``) and its source code
    (``src``); ``flag`` when any cell has one of :data:`FLAGS`; ``db≠`` (τ² simulations whose final
    database differs from the expected one, ``db_mismatch_count``) when any cell has it. Columns a
    results file lacks (older schema minors, other kinds) show as ``—`` or are left out. With
    ``wide``: latency p90, TTFT p50, throughput, total energy, total output tokens and decode time
    too. Laid out by :class:`harness.results.fit_table.FitTable`: variant names are never cut; at
    80 columns an interval or a unit takes a second line when it must.

    Returns:
        A rich renderable: the table and its footnotes (codes, flags, errors, runs). Training
        (fine-tuning) cells get their own table
        (:func:`harness.results.training_summary.training_table`) after it.
    Proving cells get their own table too
    (:func:`harness.results.proving_summary.proving_table`), before the others.
    """
    if "cell_kind" in cells_df.columns and (cells_df["cell_kind"] == "prove").any():
        from harness.results.proving_summary import proving_table

        is_proving = cells_df["cell_kind"] == "prove"
        proving = proving_table(cells_df[is_proving], title=title)
        if is_proving.all():
            return proving
        return Group(summary_table(cells_df[~is_proving], title=title), proving)
    if "cell_kind" in cells_df.columns and (cells_df["cell_kind"] == "finetune").any():
        from harness.results.training_summary import training_table

        is_training = cells_df["cell_kind"] == "finetune"
        trained = training_table(cells_df[is_training], title=title, wide=wide)
        if is_training.all():
            return trained
        return Group(summary_table(cells_df[~is_training], title=title, wide=wide), trained)
    df = with_energy_per_sample(cells_df.reset_index(drop=True))
    if df.empty:
        return FitTable([FitColumn(c, "left") for c in ("task", "variant", "acc %")], [], title=title, caption="no cells")

    axis = front_axis(df)
    on_front = pd.Series(False, index=df.index)
    sole = pd.Series(False, index=df.index)
    if axis is not None and "accuracy" in df.columns:
        ok = df["status"] == "ok" if "status" in df.columns else pd.Series(True, index=df.index)
        # cells over different sample sets (limits) are not compared on one front
        groups = [c for c in (*DEFAULT_GROUP_COLS, "limit") if c in df.columns]
        on_front.loc[ok[ok].index] = pareto_front(df[ok], cost_col=COST_AXES[axis].column, group_cols=groups)
        # the only variant of its slice is not "on the front": there is nothing to compare it with
        alone = sole_variant(df[ok], cost_col=COST_AXES[axis].column, group_cols=groups)
        sole.loc[alone[alone].index] = True
        on_front &= ~sole

    runs = sorted(df["run_id"].dropna().unique()) if "run_id" in df.columns else []
    run_key = {r: f"#{i}" for i, r in enumerate(runs, 1)}
    statuses = df["status"].fillna("—") if "status" in df.columns else pd.Series("ok", index=df.index)
    error_rows = [i for i in df.index if statuses[i] != "ok"]
    sort_cols = [c for c in ("run_id", "task", "model", "variant", "batch_size", "repeat") if c in df.columns]
    order = list(df.sort_values(sort_cols, na_position="last", kind="stable").index) if sort_cols else list(df.index)
    error_no = {i: k for k, i in enumerate([i for i in order if i in set(error_rows)], 1)}
    flagged = [c for c, _, _ in FLAGS if c in df.columns and df[c].map(_true).any()]
    has_db = _has_values(df, "db_mismatch_count")

    def get(row: pd.Series, col: str) -> Any:
        return row[col] if col in row.index else None

    def acc_text(r: pd.Series) -> str:
        if r.name in error_no:  # an error row has no figures: its status takes the accuracy's place
            return f"{text(get(r, 'status')) or MISSING} [{error_no[r.name]}]"
        low, high = num(get(r, "accuracy_ci95_low")), num(get(r, "accuracy_ci95_high"))
        if wide or low is None or high is None:
            return format_accuracy(get(r, "accuracy"), low, high, percent_sign=False)
        a = num(get(r, "accuracy"))  # at 80 columns the interval's bounds to whole points
        return MISSING if a is None else f"{a * 100:.1f} [{low * 100:.0f}–{high * 100:.0f}]"

    cols: list[_Col] = []
    if len(runs) > 1:
        cols.append(_Col("run", lambda r: run_key.get(get(r, "run_id"), MISSING), "left", keep=True))
    cols.append(_Col("task", lambda r: text(get(r, "task")) or MISSING, "left", keep=True))
    if _distinct(df, "model") > 1:
        cols.append(_Col("model", lambda r: _short_model(get(r, "model")), "left"))
    cols.append(_Col("variant", lambda r: (text(get(r, "variant")) or MISSING) + (" ✓" if bool(on_front[r.name]) else ""),
                     "left", keep=True))
    if _distinct(df, "batch_size") > 1:
        cols.append(_Col("batch", lambda r: _count(get(r, "batch_size"))))
    if _distinct(df, "repeat") > 1:
        cols.append(_Col("rep", lambda r: _count(get(r, "repeat"))))
    cols.append(_Col("n", lambda r: _count(get(r, "n"))))
    cols.append(_Col("acc % [95% CI]", acc_text, wrap_first=True))
    if any(_has_values(df, c) for c, _ in _TASK_METRICS):
        cols.append(_Col("task metrics", _task_metrics_text, wrap_first=True))
    cols.append(_Col("out tok", lambda r: _tokens(get(r, "output_tokens_mean"))))
    if _has_values(df, "truncation_rate"):
        cols.append(_Col("trunc", lambda r: _pct0(get(r, "truncation_rate"))))
    cols.append(_Col("p50", lambda r: format_seconds(get(r, "latency_p50_s"))))
    if wide:
        cols.append(_Col("p90", lambda r: format_seconds(get(r, "latency_p90_s"))))
        cols.append(_Col("TTFT", lambda r: format_seconds(get(r, "ttft_p50_s"))))
        cols.append(_Col("tok/s", lambda r: _rate(get(r, "throughput_tok_per_s"))))
    cols.append(_Col("J/sample", lambda r: _energy(get(r, "energy_per_sample_j"))))
    if wide:
        cols.append(_Col("energy", lambda r: _energy(get(r, "energy_j"))))
        cols.append(_Col("tok Σ", lambda r: _count(get(r, "output_tokens_total"))))
        cols.append(_Col("time", lambda r: format_seconds(get(r, "generation_time_s"))))
    cols.append(_Col("src", lambda r: energy_source_code(get(r, "energy_source")), "left"))
    if flagged:
        cols.append(_Col("flag", _flags_text, "left"))
    if has_db:
        cols.append(_Col("db≠", lambda r: _count(get(r, "db_mismatch_count"))))

    rows = [[col.value(df.loc[i]) for col in cols] for i in order]
    table = FitTable([FitColumn(c.header, c.justify, c.keep, c.wrap_first) for c in cols], rows, title=title)
    notes = _footnotes(df, axis, flagged, has_db, order, error_no, run_key if len(runs) > 1 else {}, wide,
                       sole_count=int(sole.sum()))
    return Group(table, notes)


def _footnotes(df, axis, flagged, has_db, order, error_no, run_key, wide, sole_count: int = 0) -> Text:
    """The lines under the table: the front, the source codes used, flags, errors, runs."""
    lines = []
    where = "per model/task/hardware/batch/limit"
    if axis == "energy_per_sample_j":
        lines.append(f"✓ = Pareto front of accuracy vs J/sample, {where}")
    elif axis == "energy_per_token_j":
        lines.append(f"✓ = Pareto front of accuracy vs energy per output token, {where}")
    elif axis == "latency_p50_s":
        lines.append(f"✓ = Pareto front of accuracy vs latency p50 (no energy measured), {where}")
    else:
        lines.append("front: not computed (neither energy nor latency available)")
    if sole_count:
        lines.append(f"no ✓ for {sole_count} cell(s): the only variant in their slice, nothing to compare")
    legend = energy_source_legend(df["energy_source"]) if "energy_source" in df.columns else None
    if legend:
        lines.append(f"src (energy source): {legend}")
    if "energy_attributed" in df.columns and df["energy_attributed"].map(_true).any():
        lines.append("energy of some cells is attributed: a share of a larger measured window (energy_attributed)")
    for col, mark, meaning in FLAGS:
        if col in flagged:
            lines.append(f"flag {mark} = {meaning} ({col})")
    if has_db:
        lines.append("db≠ = τ² simulations ending with a database other than the expected one (db_mismatch_count)")
    if not wide:
        lines.append("harness summary --wide: totals (energy, tokens, decode time), p90, TTFT, tok/s")
    for i in order:
        if i in error_no:
            row = df.loc[i]
            msg = text(row.get("error")) or "(no error text)"
            if not wide and len(msg) > 300:
                msg = msg[:300] + "…"
            label = f"{text(row.get('task')) or MISSING} · {text(row.get('variant')) or MISSING}"
            lines.append(f"[{error_no[i]}] {label}: {msg}")
    for run, key in run_key.items():
        lines.append(f"{key} = {run}")
    return Text("\n".join(lines), no_wrap=False)


def spread_table(cells_df: pd.DataFrame, title: str | None = "Spread over repeats") -> FitTable | None:
    """A table of the timing spread (CV) of every cell run more than once; None when no cell has
    two ok repeats (see :func:`harness.results.spread.repeat_spread`)."""
    spread = repeat_spread(cells_df)
    if spread.empty:
        return None
    names = ("task", "variant", "repeats", "p50 (mean)", "p50 CV", "tok/s CV", "energy CV")
    columns = [FitColumn(n, "left" if n in ("task", "variant") else "right", keep=n in ("task", "variant")) for n in names]
    rows = [
        [
            str(row.get("task", MISSING)),
            str(row.get("variant", MISSING)),
            str(row["repeats"]),
            format_seconds(row.get("latency_p50_s_mean")),
            _pct(row.get("latency_p50_s_cv")),
            _pct(row.get("throughput_tok_per_s_cv")),
            _pct(row.get("energy_j_cv")),
        ]
        for _, row in spread.sort_values(["task", "variant"]).iterrows()
    ]
    return FitTable(columns, rows, title=title, caption="CV = sample standard deviation / mean over the ok repeats")
