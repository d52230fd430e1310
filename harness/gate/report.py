"""The gate's report: markdown for people (CI logs, job summaries, PR comments), JSON for machines.

Markdown layout: a verdict line and the settings, a table per failing check (task, variant,
metric, baseline, candidate, delta, threshold, p-value, n), then folded (``<details>``) sections:
passing checks, not comparable / skipped ones, cells on one side only, the determinism report and
the Pareto fronts of both sides (computed by :func:`harness.results.pareto_front`, the summary's
and the dashboard's code). Display formatting reuses :mod:`harness.results.display`.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from harness.gate.checks import FAIL, INFO, NOT_COMPARABLE, PASS, SKIPPED, Check
from harness.gate.matching import MATCH_KEY, Side, key_dict
from harness.results import COST_AXES, pareto_front
from harness.results.display import MISSING, format_energy, format_seconds
from harness.results.pareto import DEFAULT_GROUP_COLS
from harness.results.summary import front_axis

if TYPE_CHECKING:
    from harness.gate import GateResult

__all__ = ["to_markdown", "to_json", "unusable_markdown", "unusable_json", "pareto_fronts"]


def _bytes(v: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(v) >= size:
            return f"{v / size:.3g} {unit}"
    return f"{v:.0f} B"


def fmt_value(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if unit == "fraction":
        return f"{v * 100:.1f}%"
    if unit == "tokens":
        return f"{v:.1f} tok"
    if unit == "s":
        return format_seconds(v)
    if unit == "J":
        return format_energy(v)
    if unit == "bytes":
        return _bytes(v)
    return f"{v:.4g}"


def fmt_delta(c: Check) -> str:
    d = c.delta
    if d is None or (isinstance(d, float) and math.isnan(d)):
        return MISSING
    if c.delta_kind == "ratio":
        return "×∞" if math.isinf(d) else f"×{d:.2f}"
    if c.unit == "fraction":
        return f"{d * 100:+.1f} pt"
    return f"{d:+.4g}"


def _p(p: float | None) -> str:
    return MISSING if p is None else f"{p:.3g}"


def _esc(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _variant_label(c: Check, show_model: bool) -> str:
    if not show_model:
        return str(c.variant)
    return f"{c.variant} ({c.model}, {c.dtype}, bs {c.batch_size})"


_HEAD = "| task | variant | metric | baseline | candidate | delta | threshold | p-value | n |"
_RULE = "|---|---|---|---:|---:|---:|---|---:|---:|"


def _table(checks: list[Check], show_model: bool, with_note: bool = False) -> list[str]:
    head, rule = _HEAD, _RULE
    if with_note:
        head, rule = head + " note |", rule + "---|"
    lines = [head, rule]
    for c in checks:
        row = [
            c.task, _variant_label(c, show_model), c.metric, fmt_value(c.baseline, c.unit),
            fmt_value(c.candidate, c.unit), fmt_delta(c), c.threshold, _p(c.p_value),
            MISSING if c.n is None else str(c.n),
        ]
        if with_note:
            row.append(c.note)
        lines.append("| " + " | ".join(_esc(x) for x in row) + " |")
    return lines


def _details(summary: str, body: list[str]) -> list[str]:
    return ["<details>", f"<summary>{summary}</summary>", "", *body, "", "</details>", ""]


def _runs(side: Side) -> str:
    ids = side.run_ids
    shown = ", ".join(f"`{r}`" for r in ids[:3]) + (f" +{len(ids) - 3}" if len(ids) > 3 else "")
    return f"`{side.path}` (run {shown})"


def _settings_line(result: GateResult) -> str:
    s = result.settings
    low, high = s.length_band
    cost = (f"on (≥ {s.min_repeats} repeats per side, same hardware; tolerance widened to "
            f"{s.spread_factor:g}×CV)") if s.cost else "off"
    return (f"α = {s.alpha:g} (two-sided paired test) · accuracy tolerance {s.accuracy_tolerance * 100:.1f} pt · "
            f"length band {low * 100:.0f}–{high * 100:.0f} % · truncation rise ≤ {s.truncation_tolerance * 100:.1f} pt · "
            f"cost checks {cost} · missing baseline cells {'fail' if s.fail_on_missing else 'reported'} · "
            f"settings: {result.settings_source}")


def _key_line(key: tuple) -> str:
    d = key_dict(key)
    return (f"- {d['task']} · {d['variant']} (model `{d['model']}`, {d['dtype']}, batch {d['batch_size']}, "
            f"task v{d['task_version']}, params `{d['params_hash']}`)")


def to_markdown(result: GateResult) -> str:
    """The markdown report of a gate result."""
    checks = result.checks
    fails = [c for c in checks if c.status == FAIL]
    passes = [c for c in checks if c.status == PASS]
    other = [c for c in checks if c.status in (NOT_COMPARABLE, SKIPPED)]
    info = [c for c in checks if c.status == INFO]
    show_model = len({(c.model, c.dtype, c.batch_size) for c in checks}) > 1
    n_cells = result.n_matched
    failing_cells = {tuple(getattr(c, k) for k in MATCH_KEY) for c in fails}
    if fails:
        verdict = (f"## Gate: FAIL — {len(fails)} failing check(s) in {len(failing_cells)} cell(s) "
                   f"({n_cells} matched)")
    else:
        verdict = f"## Gate: PASS — {len(passes)} check(s) passed on {n_cells} matched cell(s)"
    lines = [verdict, "", f"Baseline {_runs(result.baseline)} · candidate {_runs(result.candidate)}", "",
             _settings_line(result), ""]
    if fails:
        lines += ["### Failing checks", ""]
        by_metric: dict[str, list[Check]] = {}
        for c in fails:
            by_metric.setdefault(c.metric, []).append(c)
        for metric, group in by_metric.items():
            lines += [f"#### {metric}", "", *_table(group, show_model, with_note=True), ""]
    if passes:
        lines += _details(f"Passing checks ({len(passes)})", _table(passes, show_model))
    if other:
        lines += _details(f"Not comparable or skipped ({len(other)}) — never failed",
                          _table(other, show_model, with_note=True))
    if result.only_baseline or result.only_candidate:
        body = []
        if result.only_baseline:
            verb = "failure" if result.settings.fail_on_missing else "reported only"
            body += [f"Baseline cells missing from the candidate ({verb}):", "", *map(_key_line, result.only_baseline), ""]
        if result.only_candidate:
            body += ["Candidate cells with no baseline (not compared):", "", *map(_key_line, result.only_candidate), ""]
        lines += ["### Cells on one side only", "", *body]
    if info:
        body = ["| task | variant | n | outputs changed | share |", "|---|---|---:|---:|---:|"]
        for c in info:
            changed = round((c.candidate or 0) * (c.n or 0))
            body.append(f"| {_esc(c.task)} | {_esc(_variant_label(c, show_model))} | {c.n} | {changed} | "
                        f"{fmt_value(c.candidate, 'fraction')} |")
        changed_any = sum(1 for c in info if (c.candidate or 0) > 0)
        lines += _details(f"Determinism (greedy variants): outputs changed in {changed_any} of {len(info)} cell(s)"
                          " — reported, never failed", body)
    fronts = result.fronts
    if fronts:
        body = [f"Accuracy vs {fronts['axis_label']} (`harness.results.pareto_front`, per model, task, hardware "
                "and batch size).", "", "| task | model | baseline front | candidate front |", "|---|---|---|---|"]
        for row in fronts["rows"]:
            body.append(f"| {_esc(row['task'])} | {_esc(row['model'])} | {_esc(', '.join(row['baseline']) or MISSING)}"
                        f" | {_esc(', '.join(row['candidate']) or MISSING)} |")
        lines += _details("Pareto fronts", body)
    notes = result.notes
    if notes:
        lines += ["Notes:", "", *[f"- {_esc(n)}" for n in notes], ""]
    return "\n".join(lines).rstrip() + "\n"


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def to_json(result: GateResult) -> str:
    """The machine-readable report (``verdict``, ``exit_code``, ``checks``, ...)."""
    data = {
        "verdict": result.verdict,
        "exit_code": result.exit_code,
        "baseline": {"path": str(result.baseline.path), "run_ids": result.baseline.run_ids},
        "candidate": {"path": str(result.candidate.path), "run_ids": result.candidate.run_ids},
        "settings": result.settings.model_dump(mode="json"),
        "settings_source": result.settings_source,
        "matched_cells": result.n_matched,
        "counts": {s: sum(1 for c in result.checks if c.status == s)
                   for s in (FAIL, PASS, NOT_COMPARABLE, SKIPPED, INFO)},
        "checks": [c.as_dict() for c in result.checks],
        "only_in_baseline": [key_dict(k) for k in result.only_baseline],
        "only_in_candidate": [key_dict(k) for k in result.only_candidate],
        "pareto": result.fronts,
        "notes": result.notes,
    }
    return json.dumps(_jsonable(data), indent=2, default=str) + "\n"


def unusable_markdown(reason: str) -> str:
    return f"## Gate: UNUSABLE INPUT\n\n{reason}\n"


def unusable_json(reason: str) -> str:
    return json.dumps({"verdict": "unusable", "exit_code": 2, "reason": reason}, indent=2) + "\n"


def pareto_fronts(baseline: Side, candidate: Side) -> dict[str, Any] | None:
    """Front membership per (task, model) on each side, with the summary's choice of cost axis.

    Returns None when neither side has a cost to draw a front on.
    """
    frames = {"baseline": baseline.cells, "candidate": candidate.cells}
    axis = front_axis(candidate.cells) or front_axis(baseline.cells)
    if axis is None:
        return None
    col = COST_AXES[axis].column
    members: dict[tuple[str, str], dict[str, list[str]]] = {}
    for label, df in frames.items():
        ok = df[df["status"] == "ok"].reset_index(drop=True)
        if ok.empty or col not in ok.columns:
            continue
        groups = [g for g in DEFAULT_GROUP_COLS if g in ok.columns]
        on = pareto_front(ok, cost_col=col, group_cols=groups)
        for (task, model), sub in ok.groupby(["task", "model"], dropna=False, sort=True):
            entry = members.setdefault((str(task), str(model)), {"baseline": [], "candidate": []})
            entry[label] = sorted({str(v) for v in sub.loc[on[sub.index], "variant"]})
    rows = [{"task": t, "model": m, **v} for (t, m), v in sorted(members.items())]
    return {"axis": axis, "axis_label": COST_AXES[axis].label.lower(), "rows": rows}
