"""Rows every cell kind builds: sample rows and the per-cell figures derived from them
(DESIGN.md §4), computed in one place so every kind reports them alike.

Pure Python (the interval helpers of :mod:`harness.core.stats`); schema column names.
"""

from __future__ import annotations

import json
import math
from typing import Any

from harness.core.hashing import text_hash
from harness.core.stats import accuracy_with_ci, percentile


def mean(values) -> float | None:
    """Mean of the values that are not ``None``/NaN; ``None`` when none is left."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def sample_row(cell, doc_id: int, prompt_text: str, **columns: Any) -> dict[str, Any]:
    """One sample row: the cell's model, variant and task, ``doc_id``, the prompt and its
    ``prompt_hash`` (sha256 prefix of the prompt text), then ``columns`` (schema names)."""
    return {
        "model": cell.model_id,
        "variant": cell.variant.name,
        "task": cell.task,
        "doc_id": int(doc_id),
        "prompt_hash": text_hash(prompt_text),
        "prompt_text": prompt_text,
        **columns,
    }


def energy_ratios(energy_j: float | None, n: int | None, n_correct: float | None,
                  output_tokens: int | None = None) -> dict[str, float | None]:
    """``energy_per_token_j`` (J per output token), ``energy_per_sample_j`` and
    ``energy_per_correct_j``; each ``None`` when the energy or its denominator is missing or 0."""

    def per(denominator) -> float | None:
        return energy_j / denominator if energy_j is not None and denominator else None

    return {
        "energy_per_token_j": per(output_tokens),
        "energy_per_sample_j": per(n),
        "energy_per_correct_j": per(n_correct),
    }


def cell_metrics(samples: list[dict[str, Any]], generation_time_s: float) -> dict[str, Any]:
    """Per-cell figures from per-sample rows (DESIGN.md §4).

    ``n`` counts sample rows and ``accuracy`` is the mean ``correct`` over all of them: with
    several samples per doc (a sampling cell) that is the mean over every (doc, sample), i.e.
    the expected single-sample accuracy (pass@1), not pass@k. Its interval treats the rows as
    independent, so with several samples per doc it is narrower than a per-doc interval.

    Returns accuracy with its 95 % interval (Wilson for 0/1 grades), token means,
    ``truncation_rate`` (share of ``finish_reason == "length"``), latency/TTFT/TPOT
    percentiles, ``itl_p50_s``/``itl_p90_s``/``itl_p99_s`` over every sample's ``itl_s`` entries
    pooled (one per token after a sequence's first; a step that emitted k tokens at once gave
    each the step's gap / k: :mod:`harness.generation`), ``throughput_tok_per_s`` = Σ output
    tokens / summed decode wall time,
    ``tokens_per_correct``; ``None`` where a figure has no data (log-likelihood cells generate
    nothing: their output-token figures, truncation rate and throughput are ``None``).
    """
    correct = [float(s["correct"]) for s in samples if s.get("correct") is not None]
    accuracy, low, high = accuracy_with_ci(correct)
    out_tokens = [s["output_tokens"] for s in samples if s.get("output_tokens") is not None]
    total_out = int(sum(out_tokens)) if out_tokens else None
    finished = [s["finish_reason"] for s in samples if s.get("finish_reason") is not None]
    n_correct = float(sum(correct)) if correct else 0.0

    def pct(key: str, q: float) -> float | None:
        return percentile([s[key] for s in samples if s.get(key) is not None], q)

    itl = [float(v) for s in samples for v in (s.get("itl_s") if s.get("itl_s") is not None else ())]

    return {
        "n": len(samples),
        "n_correct": n_correct,
        "accuracy": accuracy,
        "accuracy_ci95_low": low,
        "accuracy_ci95_high": high,
        "output_tokens_mean": mean(out_tokens),
        "output_tokens_total": total_out,
        "input_tokens_mean": mean([s["input_tokens"] for s in samples if s.get("input_tokens") is not None]),
        "truncation_rate": (sum(r == "length" for r in finished) / len(finished)) if finished else None,
        "latency_p50_s": pct("latency_s", 50),
        "latency_p90_s": pct("latency_s", 90),
        "latency_p99_s": pct("latency_s", 99),
        "ttft_p50_s": pct("ttft_s", 50),
        "tpot_p50_s": pct("tpot_s", 50),
        "itl_p50_s": percentile(itl, 50),
        "itl_p90_s": percentile(itl, 90),
        "itl_p99_s": percentile(itl, 99),
        "generation_time_s": generation_time_s,
        "throughput_tok_per_s": (
            total_out / generation_time_s if total_out is not None and generation_time_s > 0 else None
        ),
        "tokens_per_correct": total_out / n_correct if total_out is not None and n_correct > 0 else None,
    }


def counter_columns(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Adapter counters aggregated per cell: ``counter_<name>_mean`` over samples (a counter
    that is already a per-request mean, ``<x>_mean``, keeps its name: ``counter_<x>_mean``)."""
    names = sorted({k for s in samples for k in json.loads(s.get("counters_json") or "{}")})
    out = {}
    for name in names:
        values = [json.loads(s["counters_json"]).get(name) for s in samples if s.get("counters_json")]
        column = f"counter_{name}" if name.endswith("_mean") else f"counter_{name}_mean"
        out[column] = mean([v for v in values if v is not None])
    return out


