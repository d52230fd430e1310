"""The gate's checks on each matched cell, after MLPerf Inference's discipline.

MLPerf Inference (Reddi et al., "MLPerf Inference Benchmark", ISCA 2020, arXiv 1911.02549)
accepts an optimised system only if its accuracy stays within a stated fraction of the reference
(99 % / 99.9 % of FP32) and, for its LLM benchmarks (e.g. Llama-2-70B), only if the mean
generated tokens per sample stays within 90-110 % of the reference's (the submission checker's
``TOKENS_PER_SAMPLE`` bounds; compliance TEST06/TEST09 check output lengths too): a system must
not win by generating less. The gate adapts both to a benchmark with a small sample:

- ``accuracy``: a paired test on the same samples (exact McNemar, 1947, for 0/1 grades; see
  :mod:`harness.gate.stats`); fails on a drop that is significant *and* beyond a tolerance.
- ``output_tokens_mean``: candidate/baseline ratio of mean output tokens on the paired samples
  within ``length_band`` (default MLPerf's 90-110 %); skipped for variants the suite declares
  ``length_changing`` (shorter outputs are their point).
- ``truncation_rate`` (share stopped by the token cap) not above the baseline's by more than
  ``truncation_tolerance``, for every variant, ``length_changing`` ones included: a budget
  technique that truncates more has regressed (reasoning that exhausts the cap leaves the answer
  unwritten: EleutherAI/lm-evaluation-harness issues #3382 and #3400).
- cost (``latency_p50_s``, ``latency_p90_s``, ``ttft_p50_s``, ``energy_per_token_j``,
  peak memory): ratio against a tolerance widened to the measured spread, only with
  ``min_repeats`` repeats per side on one hardware fingerprint (``hardware_id``), else
  "not comparable" and never failed. Energy also needs the same ``energy_source``. No cost is
  compared when a cell on either side was measured on a busy machine (``flag_interference``:
  other processes above :mod:`harness.telemetry.interference`'s thresholds); its accuracy and
  output-length checks still run.
- ``status``: a candidate cell recorded with ``status == "error"`` fails.
- ``output_changed`` (determinism, greedy variants): share of paired samples whose output text
  changed; reported, never failed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.gate.matching import CellPair, key_dict
from harness.gate.stats import accuracy_test, cost_test, length_ratio
from harness.config.gate import Gate

__all__ = ["Check", "COST_METRICS", "cell_checks", "missing_cell_check"]

PASS, FAIL, NOT_COMPARABLE, SKIPPED, INFO = "pass", "fail", "not_comparable", "skipped", "info"

COST_METRICS: dict[str, str] = {
    "latency_p50_s": "s",
    "latency_p90_s": "s",
    "ttft_p50_s": "s",
    "energy_per_token_j": "J",
    "peak_rss_bytes": "bytes",
    "peak_allocated_bytes": "bytes",
}
"""Cost columns the gate compares, with their unit (all lower-is-better)."""


@dataclass
class Check:
    """One check on one cell. ``status``: pass | fail | not_comparable | skipped | info.

    Numbers are stored in the metric's own unit (accuracy and rates as fractions, costs in SI);
    ``delta`` is candidate − baseline for accuracy/rates and candidate / baseline for ratios.
    ``threshold`` is a short human sentence of the rule applied.
    """

    model: Any
    dtype: Any
    batch_size: Any
    task: Any
    task_version: Any
    variant: Any
    params_hash: Any
    metric: str
    status: str
    unit: str
    baseline: float | None = None
    candidate: float | None = None
    delta: float | None = None
    delta_kind: str = "difference"  # difference | ratio
    threshold: str = ""
    p_value: float | None = None
    n: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return d


def _check(pair_key: tuple, metric: str, status: str, unit: str, **kw: Any) -> Check:
    return Check(**key_dict(pair_key), metric=metric, status=status, unit=unit, **kw)


def missing_cell_check(key: tuple, settings: Gate) -> Check:
    """A baseline cell the candidate lacks: a failure unless ``fail_on_missing`` is off."""
    status = FAIL if settings.fail_on_missing else NOT_COMPARABLE
    return _check(key, "missing", status, "", threshold="every baseline cell present",
                  note="baseline cell missing from the candidate")


def _is_greedy(cells: pd.DataFrame) -> bool:
    """Every generation here is greedy unless the cells sampled (``temperature`` > 0, schema
    1.4) or an adapter's params ask for sampling."""
    if "temperature" in cells.columns and (pd.to_numeric(cells["temperature"], errors="coerce").fillna(0) > 0).any():
        return False
    for raw in cells.get("params_json", pd.Series(dtype=object)).dropna():
        try:
            params = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if not isinstance(params, dict):
            continue
        if params.get("do_sample") is True or (params.get("temperature") or 0) > 0:
            return False
    return True


def _num_values(cells: pd.DataFrame, col: str) -> np.ndarray:
    if col not in cells.columns:
        return np.array([], dtype=np.float64)
    v = pd.to_numeric(cells[col], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    return v[~np.isnan(v)]


def _one(values: pd.Series) -> str | None:
    """The single non-null value of a column, None when absent or mixed."""
    vals = {str(v) for v in values.dropna()}
    return vals.pop() if len(vals) == 1 and values.notna().all() else None


def cell_checks(pair: CellPair, settings: Gate, length_changing: bool) -> list[Check]:
    """All checks of one matched cell (see the module docstring)."""
    key = pair.key
    checks: list[Check] = []
    base_ok, cand_ok = pair.ok("b"), pair.ok("c")
    if base_ok.empty:
        return [_check(key, "status", NOT_COMPARABLE, "", threshold="baseline cell ok",
                       note="baseline cell recorded status=error: nothing to compare against")]
    cand_err = pair.cand_cells[pair.cand_cells["status"] != "ok"]
    if not cand_err.empty:
        err = next((str(e) for e in cand_err["error"].dropna()), "status=error")
        checks.append(_check(key, "status", FAIL, "", threshold="candidate cell ok",
                             note=f"candidate cell failed: {err.splitlines()[0][:200] if err else 'status=error'}"))
    if cand_ok.empty:
        return checks
    checks += _sample_checks(pair, settings, length_changing)
    checks += _cost_checks(pair, settings)
    return checks


def _sample_checks(pair: CellPair, settings: Gate, length_changing: bool) -> list[Check]:
    key = pair.key
    p = pair.paired
    if p is None or p.empty:
        return [_check(key, "accuracy", FAIL, "fraction", n=0,
                       threshold="samples matched by (doc_id, sample)",
                       note=f"no sample matched by (doc_id, sample) (baseline {pair.n_base_samples}, "
                            f"candidate {pair.n_cand_samples} samples)")]
    n = len(p)
    unmatched = f"; {pair.n_base_samples - n} baseline / {pair.n_cand_samples - n} candidate samples unmatched" \
        if (pair.n_base_samples, pair.n_cand_samples) != (n, n) else ""
    out: list[Check] = []

    # accuracy: paired test
    t = accuracy_test(p["correct_b"], p["correct_c"], alpha=settings.alpha,
                      tolerance=settings.accuracy_tolerance, n_boot=settings.bootstrap_samples)
    detail = (f"McNemar exact: b={t.b} (right→wrong), c={t.c} (wrong→right)" if t.method == "mcnemar_exact"
              else f"paired bootstrap ({settings.bootstrap_samples} resamples)")
    out.append(_check(
        key, "accuracy", FAIL if t.regression else PASS, "fraction",
        baseline=t.baseline, candidate=t.candidate, delta=t.delta, p_value=t.p_value, n=n,
        threshold=f"fail if drop > {settings.accuracy_tolerance * 100:.1f} pt and p < {settings.alpha:g}",
        note=detail + unmatched,
    ))

    # output length band and truncation
    low, high = settings.length_band
    mb, mc, ratio = length_ratio(p["output_tokens_b"], p["output_tokens_c"])
    band = f"×{low:.2f}–×{high:.2f} of baseline"
    if length_changing:
        out.append(_check(key, "output_tokens_mean", SKIPPED, "tokens", baseline=mb, candidate=mc, delta=ratio,
                          delta_kind="ratio", threshold=band, n=n, note="variant declared length_changing"))
    elif math.isnan(mb) or math.isnan(mc):
        out.append(_check(key, "output_tokens_mean", NOT_COMPARABLE, "tokens", baseline=mb, candidate=mc,
                          n=n, threshold=band, note="output_tokens not recorded"))
    else:
        ok = low - 1e-12 <= ratio <= high + 1e-12
        out.append(_check(key, "output_tokens_mean", PASS if ok else FAIL, "tokens", baseline=mb, candidate=mc,
                          delta=ratio, delta_kind="ratio", threshold=band, n=n,
                          note="" if ok else ("shorter outputs than the baseline: stops early?" if ratio < low
                                              else "longer outputs than the baseline")))
    if "finish_reason_b" in p.columns:
        tb = float((p["finish_reason_b"] == "length").mean())
        tc = float((p["finish_reason_c"] == "length").mean())
        rule = f"rise ≤ {settings.truncation_tolerance * 100:.1f} pt"
        # applies to length_changing variants too: a budget that truncates more has regressed
        status = FAIL if tc - tb > settings.truncation_tolerance + 1e-12 else PASS
        note = "more samples stopped by the token cap" if status == FAIL else ""
        out.append(_check(key, "truncation_rate", status, "fraction", baseline=tb, candidate=tc, delta=tc - tb,
                          threshold=rule, n=n, note=note))

    # determinism (report only)
    if "output_text_b" in p.columns:
        if _is_greedy(pair.base_cells) and _is_greedy(pair.cand_cells):
            changed = (p["output_text_b"].fillna("") != p["output_text_c"].fillna("")).to_numpy()
            out.append(_check(key, "output_changed", INFO, "fraction", candidate=float(changed.mean()), n=n,
                              threshold="reported, never failed",
                              note=f"{int(changed.sum())} of {n} greedy outputs differ from the baseline's"))
        else:
            out.append(_check(key, "output_changed", SKIPPED, "fraction", n=n, note="sampling variant"))
    return out


def _interfered(cells: pd.DataFrame) -> int:
    """How many of ``cells`` were measured with other load on the machine (``flag_interference``,
    schema 1.4; absent in older files = not flagged)."""
    if "flag_interference" not in cells.columns:
        return 0
    return sum(bool(v) for v in cells["flag_interference"] if isinstance(v, (bool, np.bool_)))


def _cost_checks(pair: CellPair, settings: Gate) -> list[Check]:
    key = pair.key
    if not settings.cost:
        return []  # the report's header says cost checks are off
    base_ok, cand_ok = pair.ok("b"), pair.ok("c")
    busy = {"baseline": _interfered(base_ok), "candidate": _interfered(cand_ok)}
    busy_reason = None
    if any(busy.values()):
        busy_reason = ("machine busy during the measurement (flag_interference: "
                       + ", ".join(f"{n} {side} cell{'s' if n > 1 else ''}" for side, n in busy.items() if n)
                       + "): costs are not comparable")
    tolerances = settings.cost_tolerance.model_dump()
    out: list[Check] = []
    for metric, unit in COST_METRICS.items():
        tol = tolerances[metric]
        vb, vc = _num_values(base_ok, metric), _num_values(cand_ok, metric)
        mb = float(vb.mean()) if vb.size else None
        mc = float(vc.mean()) if vc.size else None
        common = dict(baseline=mb, candidate=mc, delta_kind="ratio",
                      threshold=f"ratio ≤ ×{1 + tol:.2f}, widened to {settings.spread_factor:g}×CV")
        if vb.size == 0 and vc.size == 0:
            continue  # not measured on this hardware (e.g. GPU memory on a CPU run): nothing to say
        # every reason that applies is named (hardware first: it holds whatever the load was)
        reasons: list[str] = []
        hb, hc = _one(base_ok["hardware_id"]), _one(cand_ok["hardware_id"])
        if hb is None or hc is None or hb != hc:
            reasons.append(f"different or unknown hardware (hardware_id {hb or 'mixed/none'} vs "
                           f"{hc or 'mixed/none'})")
        if busy_reason is not None:
            reasons.append(busy_reason)
        if vb.size < settings.min_repeats or vc.size < settings.min_repeats:
            reasons.append(f"needs ≥ {settings.min_repeats} repeats per side (baseline {vb.size}, "
                           f"candidate {vc.size})")
        if metric == "energy_per_token_j":
            sb, sc = _one(base_ok["energy_source"]), _one(cand_ok["energy_source"])
            if sb is None or sb != sc or sb == "unavailable":
                reasons.append(f"energy sources differ or are unavailable ({sb or 'mixed'} vs {sc or 'mixed'})")
        if not reasons and not (mb and mb > 0):
            reasons.append("baseline value is zero")
        reason = "; ".join(reasons) or None
        if reason is not None:
            if mb and mc is not None:
                common["delta"] = mc / mb  # shown for information only
            out.append(_check(key, metric, NOT_COMPARABLE, unit, note=reason, **common))
            continue
        t = cost_test(vb, vc, tolerance=tol, spread_factor=settings.spread_factor)
        out.append(_check(
            key, metric, FAIL if t.regression else PASS, unit, baseline=t.baseline, candidate=t.candidate,
            delta=t.ratio, delta_kind="ratio", n=min(t.n_baseline, t.n_candidate),
            threshold=f"ratio ≤ ×{1 + t.tolerance:.2f} (max({tol * 100:.0f} %, {settings.spread_factor:g}×CV "
                      f"{max(t.cv_baseline, t.cv_candidate) * 100:.1f} %))",
            note=f"{t.n_baseline} vs {t.n_candidate} repeats",
        ))
    return out
