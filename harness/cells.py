"""Cell runners: how one kind of cell turns into a result row and sample rows.

The executor, resume and the results store are shared by every kind of cell through the
small :class:`CellRunner` protocol. This module holds the evaluation kind: a generation
variant evaluated by lm-eval on a harness task, inside one telemetry window — generation tasks
through ``generate_until`` and the harness grader, multiple-choice tasks through
``loglikelihood`` (rows: :mod:`harness.choice_rows`). Training cells
(``finetune``) live in :mod:`harness.finetune.cell`, τ² agent cells (``agent``) in
:mod:`harness.agents.cell`; :data:`CELL_RUNNERS` maps a cell's
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

    ``n`` counts sample rows and ``accuracy`` is the mean ``correct`` over all of them: with
    several samples per doc (a sampling cell) that is the mean over every (doc, sample), i.e.
    the expected single-sample accuracy (pass@1), not pass@k. Its interval treats the rows as
    independent, so with several samples per doc it is narrower than a per-doc interval.

    Returns accuracy with its 95 % interval (Wilson for 0/1 grades), token means,
    ``truncation_rate`` (share of ``finish_reason == "length"``), latency/TTFT/TPOT
    percentiles, ``throughput_tok_per_s`` = Σ output tokens / summed decode wall time,
    ``tokens_per_correct``; ``None`` where a figure has no data (log-likelihood cells generate
    nothing: their output-token figures, truncation rate and throughput are ``None``).
    """
    from harness.results.stats import accuracy_with_ci, percentile

    correct = [float(s["correct"]) for s in samples if s.get("correct") is not None]
    accuracy, low, high = accuracy_with_ci(correct)
    out_tokens = [s["output_tokens"] for s in samples if s.get("output_tokens") is not None]
    total_out = int(sum(out_tokens)) if out_tokens else None
    finished = [s["finish_reason"] for s in samples if s.get("finish_reason") is not None]
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
        "truncation_rate": (sum(r == "length" for r in finished) / len(finished)) if finished else None,
        "latency_p50_s": pct("latency_s", 50),
        "latency_p90_s": pct("latency_s", 90),
        "latency_p99_s": pct("latency_s", 99),
        "ttft_p50_s": pct("ttft_s", 50),
        "tpot_p50_s": pct("tpot_s", 50),
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
        out[column] = _mean([v for v in values if v is not None])
    return out


WARMUP_TOKENS = 8
"""Tokens decoded per warm-up request: enough to run prefill and the decode step's kernels."""


def _warm_up(variant, spec, docs: list[dict], n: int, max_new_tokens: int) -> float:
    """Decode ``n`` of the task's own prompts (chat template applied) before the measured
    window; returns their wall time (the cold start)."""
    picked = [docs[i % len(docs)] for i in range(n)]
    prompts = [variant.apply_chat_template([{"role": "user", "content": spec.prompt(d)}]) for d in picked]
    return variant.warmup(prompts, min(WARMUP_TOKENS, max_new_tokens))


def generation_sample_rows(
    cell: Cell, spec, records: list[dict], variant_stats: dict, grades: dict
) -> list[dict[str, Any]]:
    """Sample rows (schema column names) of a generation cell, one per ``(doc_id, sample)``,
    sorted by ``(doc_id, sample)``: lm-eval's per-sample records (one per doc; its
    ``filtered_resps`` holds the doc's response, or all ``n`` of them when the cell samples
    several) joined with the variant's ``(task, doc_id, 0, sample) → RequestStats`` and the
    grades ``process_results`` recorded, ``(doc_id, sample) → Grade``
    (:func:`harness.tasks.lm_eval_bridge.task_config`): nothing is graded here.

    Raises:
        RuntimeError: a sample without the variant's stats or without a recorded grade.
    """
    from harness.tasks.lm_eval_bridge import responses

    samples = []
    for record in records:
        doc_id = int(record["doc_id"])
        reference = spec.reference(record["doc"])
        for sample, text in enumerate(responses(record["filtered_resps"][0])):
            stats = variant_stats.get((cell.task, record["doc_id"], 0, sample))
            if stats is None:
                raise RuntimeError(f"{cell.task} doc {doc_id} sample {sample}: the variant recorded no stats")
            grade = grades.get((int(record["doc"]["doc_id"]), sample))
            if grade is None:
                raise RuntimeError(f"{cell.task} doc {doc_id} sample {sample}: no grade was recorded")
            samples.append(
                {
                    "model": cell.model_id,
                    "variant": cell.variant.name,
                    "task": cell.task,
                    "doc_id": doc_id,
                    "sample": sample,
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
    samples.sort(key=lambda s: (s["doc_id"], s["sample"]))
    return samples


class EvalCellRunner:
    """Evaluation cells: ``adapter.wrap(base)`` evaluated by lm-eval on a harness task.

    Generation tasks run with the chat template; multiple-choice (log-likelihood) tasks with
    plain-text prompts, as lm-eval runs them, and add their ``metric_*`` columns.
    """

    kind = "eval"

    def run(self, cell: Cell, base, telemetry, on_progress=None, work_dir=None) -> CellOutcome:
        import lm_eval
        from lm_eval.tasks import TaskManager

        from harness.adapters import ADAPTERS
        from harness.adapters.base import CellContext
        from harness.tasks import get_task
        from harness.tasks.lm_eval_bridge import build_generation_task, build_task

        spec = get_task(cell.task)
        docs = spec.load_docs()
        n_docs = min(cell.limit, len(docs)) if cell.limit else len(docs)
        adapter = ADAPTERS.get(cell.variant.adapter)(cell.params)
        # Adapter preparation (e.g. a calibration) runs before, and outside, the telemetry window.
        prepared = adapter.prepare(base, spec, docs, CellContext(cell.limit, cell.batch_size, cell.max_new_tokens, work_dir))
        variant = adapter.wrap(base, batch_size=cell.batch_size, max_new_tokens=cell.max_new_tokens)
        if on_progress:
            variant.on_progress = lambda done: on_progress(done, n_docs * cell.samples)
        if spec.output_type == "generate_until":  # process_results grades each sample once, into grades
            task, grades = build_generation_task(
                spec, cell.max_new_tokens, docs,
                samples=cell.samples, temperature=cell.temperature, top_p=cell.top_p, seed=cell.seed,
            )
        else:
            task, grades = build_task(spec, cell.max_new_tokens, docs), None
        # warm-up decodes the task's prompts: generation tasks only (log-likelihood cells run none)
        warmup = cell.warmup if spec.output_type == "generate_until" else 0
        warmup_time_s = _warm_up(variant, spec, docs, warmup, cell.max_new_tokens) if warmup else None
        variant.telemetry, variant.window_key = telemetry, cell.cell_hash
        # The telemetry window opens inside the variant: generation only, not lm-eval's bookkeeping.
        output = lm_eval.simple_evaluate(
            model=variant,
            tasks=[task],
            task_manager=TaskManager(include_defaults=False),  # task objects only: skip indexing lm-eval's ~14k YAMLs
            limit=cell.limit,
            apply_chat_template=spec.output_type == "generate_until",  # log-likelihood prompts are plain text
            log_samples=True,
            bootstrap_iters=0,
            verbosity="ERROR",
            random_seed=cell.seed,
            numpy_random_seed=cell.seed,
            torch_random_seed=cell.seed,
            fewshot_random_seed=cell.seed,
        )
        records = output["samples"][cell.task]
        if spec.output_type == "multiple_choice":
            from harness.choice_rows import choice_metric_columns, choice_sample_rows

            samples = choice_sample_rows(cell, spec, records, variant.stats)
            task_metrics = choice_metric_columns(spec, output["results"][cell.task])
        else:
            samples, task_metrics = generation_sample_rows(cell, spec, records, variant.stats, grades), {}
        metrics = cell_metrics(samples, variant.generation_time_s)
        if len(variant.window_results) != 1:
            raise RuntimeError(f"expected one generation window, got {len(variant.window_results)}")
        telemetry_cols = variant.window_results[0].as_columns()
        energy = telemetry_cols.get("energy_j")
        row = {
            **metrics,
            **telemetry_cols,
            **counter_columns(samples),
            **task_metrics,
            "latency_attributed": spec.output_type == "multiple_choice",
            "param_bytes": variant.param_bytes,
            "energy_per_token_j": energy / metrics["output_tokens_total"]
            if energy is not None and metrics["output_tokens_total"]
            else None,
            "energy_per_correct_j": energy / metrics["n_correct"] if energy is not None and metrics["n_correct"] else None,
            "energy_per_sample_j": energy / metrics["n"] if energy is not None and metrics["n"] else None,
            "warmup_requests": warmup,
            "warmup_time_s": warmup_time_s,
            **prepared,
        }
        return CellOutcome(cell_row=row, sample_rows=samples, telemetry_samples=variant.window_results[0].samples)


from harness.agents.cell import AgentCellRunner  # noqa: E402
from harness.finetune.cell import FinetuneCellRunner  # noqa: E402  (after CellOutcome: it imports this module)

CELL_RUNNERS: dict[str, CellRunner] = {
    "eval": EvalCellRunner(),
    "finetune": FinetuneCellRunner(),
    "agent": AgentCellRunner(),
}
