"""Cell runners: how one kind of cell turns into a result row and sample rows.

The executor, resume and the results store are shared by every kind of cell through the
small :class:`CellRunner` protocol. This module holds the evaluation kind: a generation
variant evaluated by lm-eval on a harness task, inside one telemetry window. Training cells
(``finetune``) live in :mod:`harness.finetune.cell`; :data:`CELL_RUNNERS` maps a cell's
``kind`` to its runner. A kind other than ``eval`` loads its own base for a group of cells
(``load_base(ref, dtype, device)``) and checks its data before anything loads
(``check_inputs(cells)``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from harness.suite import Cell


@dataclass
class CellOutcome:
    """What a cell runner returns: the cell row and its sample rows (schema column names)."""

    cell_row: dict[str, Any]
    sample_rows: list[dict[str, Any]]
    telemetry_samples: list = field(default_factory=list)  # the window's probe readings


class CellRunner(Protocol):
    """One kind of cell (evaluation, fine-tuning; agent cells later)."""

    kind: str

    def run(self, cell: Cell, base, telemetry, on_progress: Callable[[int, int], None] | None, work_dir=None) -> CellOutcome:
        """Run ``cell`` on the loaded ``base`` model inside a ``telemetry`` window (``work_dir``: the run directory)."""
        ...


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def cell_metrics(samples: list[dict[str, Any]], generation_time_s: float) -> dict[str, Any]:
    """Per-cell figures from per-sample rows (DESIGN.md §4).

    Returns accuracy with its 95 % interval (Wilson for 0/1 grades), token means,
    ``truncation_rate`` (share of ``finish_reason == "length"``), latency/TTFT/TPOT
    percentiles, ``throughput_tok_per_s`` = Σ output tokens / summed decode wall time,
    ``tokens_per_correct``; ``None`` where a figure has no data.
    """
    from harness.results.stats import accuracy_with_ci, percentile

    correct = [float(s["correct"]) for s in samples if s.get("correct") is not None]
    accuracy, low, high = accuracy_with_ci(correct)
    out_tokens = [s["output_tokens"] for s in samples if s.get("output_tokens") is not None]
    total_out = int(sum(out_tokens))
    n_correct = float(sum(correct)) if correct else 0.0

    def pct(key: str, q: float) -> float | None:
        return percentile([s[key] for s in samples if s.get(key) is not None], q)

    return {
        "n": len(samples),
        "n_correct": n_correct,
        "accuracy": accuracy,
        "accuracy_ci95_low": low,
        "accuracy_ci95_high": high,
        "output_tokens_mean": _mean(out_tokens),
        "output_tokens_total": total_out,
        "input_tokens_mean": _mean([s["input_tokens"] for s in samples if s.get("input_tokens") is not None]),
        "truncation_rate": (sum(s["finish_reason"] == "length" for s in samples) / len(samples)) if samples else None,
        "latency_p50_s": pct("latency_s", 50),
        "latency_p90_s": pct("latency_s", 90),
        "latency_p99_s": pct("latency_s", 99),
        "ttft_p50_s": pct("ttft_s", 50),
        "tpot_p50_s": pct("tpot_s", 50),
        "generation_time_s": generation_time_s,
        "throughput_tok_per_s": total_out / generation_time_s if generation_time_s > 0 else None,
        "tokens_per_correct": total_out / n_correct if n_correct > 0 else None,
    }


def counter_columns(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Adapter counters aggregated per cell: ``counter_<name>_mean`` over samples (a counter
    that is already a per-request mean, ``<x>_mean``, keeps its name: ``counter_<x>_mean``)."""
    names = sorted({k for s in samples for k in json.loads(s.get("counters_json") or "{}")})
    out = {}
    for name in names:
        values = [json.loads(s["counters_json"]).get(name) for s in samples if s.get("counters_json")]
        column = f"counter_{name}" if name.endswith("_mean") else f"counter_{name}_mean"
        out[column] = _mean([v for v in values if v is not None])
    return out


WARMUP_TOKENS = 8
"""Tokens decoded per warm-up request: enough to run prefill and the decode step's kernels."""


def _warm_up(variant, spec, docs: list[dict], cell: Cell) -> float:
    """Decode ``cell.warmup`` of the task's own prompts (chat template applied) before the
    measured window; returns their wall time (the cold start)."""
    picked = [docs[i % len(docs)] for i in range(cell.warmup)]
    prompts = [variant.apply_chat_template([{"role": "user", "content": spec.prompt(d)}]) for d in picked]
    return variant.warmup(prompts, min(WARMUP_TOKENS, cell.max_new_tokens))


class EvalCellRunner:
    """Evaluation cells: ``adapter.wrap(base)`` evaluated by lm-eval on a harness task."""

    kind = "eval"

    def run(self, cell: Cell, base, telemetry, on_progress=None, work_dir=None) -> CellOutcome:
        import lm_eval

        from harness.adapters import ADAPTERS
        from harness.adapters.base import CellContext
        from harness.tasks import get_task
        from harness.tasks.lm_eval_bridge import METRIC, build_task

        spec = get_task(cell.task)
        docs = spec.load_docs()
        n_docs = min(cell.limit, len(docs)) if cell.limit else len(docs)
        adapter = ADAPTERS.get(cell.variant.adapter)(cell.params)
        # Adapter preparation (e.g. a calibration) runs before, and outside, the telemetry window.
        prepared = adapter.prepare(base, spec, docs, CellContext(cell.limit, cell.batch_size, cell.max_new_tokens, work_dir))
        variant = adapter.wrap(base, batch_size=cell.batch_size, max_new_tokens=cell.max_new_tokens)
        if on_progress:
            variant.on_progress = lambda done: on_progress(done, n_docs)
        task = build_task(spec, cell.max_new_tokens, docs)
        warmup_time_s = _warm_up(variant, spec, docs, cell) if cell.warmup else None
        variant.telemetry, variant.window_key = telemetry, cell.cell_hash
        # The telemetry window opens inside the variant: generation only, not lm-eval's bookkeeping.
        output = lm_eval.simple_evaluate(
            model=variant,
            tasks=[task],
            limit=cell.limit,
            apply_chat_template=True,
            log_samples=True,
            bootstrap_iters=0,
            verbosity="ERROR",
            random_seed=cell.seed,
            numpy_random_seed=cell.seed,
            torch_random_seed=cell.seed,
            fewshot_random_seed=cell.seed,
        )
        samples = []
        for record in output["samples"][cell.task]:
            stats = variant.stats.get((cell.task, record["doc_id"], 0))
            if stats is None:
                raise RuntimeError(f"{cell.task} doc {record['doc_id']}: the variant recorded no stats")
            text = record["filtered_resps"][0]
            reference = spec.reference(record["doc"])
            grade = spec.grade(text, reference)
            if float(grade.correct) != float(record[METRIC]):
                raise RuntimeError(f"{cell.task} doc {record['doc_id']}: lm-eval's score and the grader disagree")
            samples.append(
                {
                    "model": cell.model_id,
                    "variant": cell.variant.name,
                    "task": cell.task,
                    "doc_id": int(record["doc_id"]),
                    "prompt_hash": hashlib.sha256(stats.prompt_text.encode()).hexdigest()[:16],
                    "prompt_text": stats.prompt_text,
                    "output_text": text,
                    "extracted_answer": grade.extracted,
                    "reference": reference,
                    "correct": float(grade.correct),
                    "grade_reason": grade.reason,
                    "input_tokens": stats.input_tokens,
                    "output_tokens": stats.output_tokens,
                    "finish_reason": stats.finish_reason,
                    "latency_s": stats.latency_s,
                    "ttft_s": stats.ttft_s,
                    "tpot_s": stats.tpot_s,
                    "itl_s": stats.itl_s,
                    "batch_size": stats.batch_size,
                    "counters_json": json.dumps(stats.counters, sort_keys=True),
                }
            )
        samples.sort(key=lambda s: s["doc_id"])
        metrics = cell_metrics(samples, variant.generation_time_s)
        if len(variant.window_results) != 1:
            raise RuntimeError(f"expected one generation window, got {len(variant.window_results)}")
        telemetry_cols = variant.window_results[0].as_columns()
        energy = telemetry_cols.get("energy_j")
        row = {
            **metrics,
            **telemetry_cols,
            **counter_columns(samples),
            "param_bytes": variant.param_bytes,
            "energy_per_token_j": energy / metrics["output_tokens_total"]
            if energy is not None and metrics["output_tokens_total"]
            else None,
            "energy_per_correct_j": energy / metrics["n_correct"] if energy is not None and metrics["n_correct"] else None,
            "energy_per_sample_j": energy / metrics["n"] if energy is not None and metrics["n"] else None,
            "warmup_requests": cell.warmup,
            "warmup_time_s": warmup_time_s,
            **prepared,
        }
        return CellOutcome(cell_row=row, sample_rows=samples, telemetry_samples=variant.window_results[0].samples)


from harness.finetune.cell import FinetuneCellRunner  # noqa: E402  (after CellOutcome: it imports this module)

CELL_RUNNERS: dict[str, CellRunner] = {"eval": EvalCellRunner(), "finetune": FinetuneCellRunner()}
