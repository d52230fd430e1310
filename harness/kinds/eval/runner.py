"""Running one evaluation cell: ``adapter.wrap(base)`` evaluated by lm-eval on a harness task,
inside one telemetry window — generation tasks through ``generate_until`` and the harness
grader, multiple-choice tasks through ``loglikelihood`` (rows: :mod:`.choice_rows`).
"""

from __future__ import annotations

import json
from typing import Any

from harness.core.cell import Cell, CellOutcome
from harness.core.rows import cell_metrics, counter_columns, energy_ratios, sample_row

WARMUP_TOKENS = 8
"""Tokens decoded per warm-up request: enough to run prefill and the decode step's kernels."""


def warmup_requests(n: int, batch_size: int) -> int:
    """Requests the warm-up decodes for ``n`` asked: ``n`` rounded up to whole batches of the
    variant's ``batch_size`` (0 stays 0), so every warm-up batch runs at the cell's batch size and
    the measured window does not pay for the first batched kernels (allocations, kernel
    selection at that shape)."""
    return -(-n // batch_size) * batch_size if n > 0 else 0


def _warm_up(variant, spec, docs: list[dict], n: int, max_new_tokens: int, measured: list[dict] | None = None,
             requests: int = 0) -> tuple[int, float]:
    """Decode ``n`` of the task's own prompts (chat template applied; rounded up to whole
    batches: :func:`warmup_requests`) before the measured window, and compile a compiled
    variant's step for the ``measured`` docs' ``requests`` requests; returns how many it decoded
    and their wall time (the cold start, compilation included)."""
    n = warmup_requests(n, max(1, int(getattr(variant, "batch_size", 1) or 1)))
    picked = [docs[i % len(docs)] for i in range(n)]

    def chat(doc: dict) -> str:
        return variant.apply_chat_template([{"role": "user", "content": spec.prompt(doc)}])

    planned = [chat(d) for d in measured or picked] if getattr(variant, "compiled", None) is not None else None
    return n, variant.warmup([chat(d) for d in picked], min(WARMUP_TOKENS, max_new_tokens), planned, requests)


def _graphs_compiled() -> int | None:
    """``torch._dynamo``'s compiled-graph count, or ``None`` when dynamo was never imported
    (nothing was compiled in this process)."""
    import sys

    if "torch._dynamo" not in sys.modules:
        return None
    from harness.compiled_step import graphs_compiled

    return graphs_compiled()


def _compile_columns(variant, graphs_before: int | None) -> dict[str, Any]:
    """``compile``, ``compiled_steps_share`` (decode steps of the measured window run by the
    compiled graph, 0 when the technique's own forward ran them eagerly) and ``compile_recompiles``
    (graphs compiled inside the measured window: expected 0) of a cell; null figures when eager."""
    compiled = getattr(variant, "compiled", None)
    if compiled is None:
        return {"compile": False, "compiled_steps_share": None, "compile_recompiles": None}
    steps = compiled.compiled_steps + compiled.eager_steps
    after = _graphs_compiled()
    return {
        "compile": True,
        "compiled_steps_share": compiled.compiled_steps / steps if steps else None,
        "compile_recompiles": (after or 0) - (graphs_before or 0),
    }


def generation_sample_rows(
    cell: Cell, spec, records: list[dict], variant_stats: dict, grades: dict
) -> list[dict[str, Any]]:
    """Sample rows (schema column names) of a generation cell, one per ``(doc_id, sample)``,
    sorted by ``(doc_id, sample)``: lm-eval's per-sample records (one per doc; its
    ``filtered_resps`` holds the doc's response, or all ``n`` of them when the cell samples
    several) joined with the variant's ``(task, doc_id, 0, sample) → RequestStats`` and the
    grades ``process_results`` recorded, ``(doc_id, sample) → Grade``
    (:func:`harness.tasks.lm_eval_bridge.task_config`, told which samples the token cap
    truncated): nothing is graded here; the row's ``reference`` is the grade's (None when the doc
    had no usable reference).

    Raises:
        RuntimeError: a sample without the variant's stats or without a recorded grade.
    """
    from harness.tasks.lm_eval_bridge import responses

    samples = []
    for record in records:
        doc_id = int(record["doc_id"])
        if int(record["doc"]["doc_id"]) != doc_id:  # the stats (lm-eval's doc_id) and the grades (the doc's) must agree
            raise RuntimeError(f"{cell.task}: lm-eval doc_id {doc_id} is the doc's {record['doc']['doc_id']}")
        for sample, text in enumerate(responses(record["filtered_resps"][0])):
            stats = variant_stats.get((cell.task, record["doc_id"], 0, sample))
            if stats is None:
                raise RuntimeError(f"{cell.task} doc {doc_id} sample {sample}: the variant recorded no stats")
            grade = grades.get((doc_id, sample))
            if grade is None:
                raise RuntimeError(f"{cell.task} doc {doc_id} sample {sample}: no grade was recorded")
            samples.append(
                sample_row(
                    cell,
                    doc_id,
                    stats.prompt_text,
                    sample=sample,
                    output_text=text,
                    extracted_answer=grade.extracted,
                    reference=grade.reference,
                    correct=float(grade.correct),
                    grade_reason=grade.reason,
                    input_tokens=stats.input_tokens,
                    output_tokens=stats.output_tokens,
                    finish_reason=stats.finish_reason,
                    latency_s=stats.latency_s,
                    ttft_s=stats.ttft_s,
                    tpot_s=stats.tpot_s,
                    itl_s=stats.itl_s,
                    queue_s=stats.queue_s,
                    batch_size=stats.batch_size,
                    counters_json=json.dumps(stats.counters, sort_keys=True),
                )
            )
    samples.sort(key=lambda s: (s["doc_id"], s["sample"]))
    return samples


class ContextLengthError(ValueError):
    """A cell's prompts plus its token cap do not fit in the model's context."""


def check_context(cell: Cell, spec, docs: list[dict], variant, model_id: str) -> int:
    """Refuse a generation cell whose ``max_new_tokens``, or longest prompt (chat template and the
    variant's prompt transform applied, as lm-eval builds it) plus ``max_new_tokens``, exceeds the
    model's context length (:func:`harness.scoring.max_length_of`). Runs before the warm-up and
    the measured window: a cell that cannot fit fails in a second, not after a silent run.

    Args:
        docs: the documents the cell evaluates.

    Returns:
        The context length in tokens.

    Raises:
        ContextLengthError: one line naming the context length, the cap and the longest prompt.
    """
    from harness.scoring import max_length_of

    context = max_length_of(variant.model, variant.tokenizer)
    where = f"the context length of {model_id} ({context:,} tokens)"
    if cell.max_new_tokens >= context:
        raise ContextLengthError(
            f"max_new_tokens {cell.max_new_tokens:,} is not below {where}; lower defaults.max_new_tokens"
        )
    longest, doc_id = 0, None
    for doc in docs:
        text = variant.apply_chat_template([{"role": "user", "content": spec.prompt(doc)}])
        n = len(variant.tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > longest:
            longest, doc_id = n, doc.get("doc_id")
    if longest + cell.max_new_tokens > context:
        raise ContextLengthError(
            f"{cell.task} doc {doc_id}: prompt {longest:,} tokens + max_new_tokens {cell.max_new_tokens:,} = "
            f"{longest + cell.max_new_tokens:,} exceeds {where}; lower defaults.max_new_tokens or use a model with a longer context"
        )
    return context


def run_eval_cell(cell: Cell, base, telemetry, on_progress=None, files: dict[str, bytes] | None = None) -> CellOutcome:
    """Evaluate one cell: ``adapter.wrap(base)`` run by lm-eval on the cell's task.

    Generation tasks run with the chat template; multiple-choice (log-likelihood) tasks with
    plain-text prompts, as lm-eval runs them, and add their ``metric_*`` columns. The
    adapter's :meth:`~harness.adapters.base.Adapter.prepare` runs before, and outside, the
    telemetry window; files it keeps (``files``, e.g. a calibration) come back in the outcome.
    """
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
    kept = dict(files or {})
    prepared = adapter.prepare(base, spec, docs, CellContext(cell.limit, cell.batch_size, cell.max_new_tokens, kept))
    variant = adapter.wrap(base, batch_size=cell.batch_size, max_new_tokens=cell.max_new_tokens)
    sampling = cell.settings or {"samples": 1, "temperature": 0.0, "top_p": 1.0}
    if spec.output_type == "generate_until":  # before the warm-up and the window: fail in a second
        check_context(cell, spec, docs[:n_docs], variant, cell.model_id)
    if on_progress:
        variant.on_progress = lambda done: on_progress(done, n_docs * sampling["samples"])
    if spec.output_type == "generate_until":  # process_results grades each sample once, into grades

        def truncated_of(doc_id: int, sample: int) -> bool:  # called after generation: the stats are complete
            stats = variant.stats.get((cell.task, doc_id, 0, sample))
            return stats is not None and stats.finish_reason == "length"

        task, grades = build_generation_task(spec, cell.max_new_tokens, docs, seed=cell.seed,
                                             truncated_of=truncated_of, **sampling)
    else:
        task, grades = build_task(spec, cell.max_new_tokens, docs), None
    # warm-up decodes the task's prompts: generation tasks only (log-likelihood cells run none)
    warmup = cell.warmup if spec.output_type == "generate_until" else 0
    if spec.output_type == "generate_until" and getattr(cell.variant, "compile", None):
        from harness.compiled_step import CompiledStep

        variant.compiled = CompiledStep(variant.model)
    warmup, warmup_time_s = (
        _warm_up(variant, spec, docs, warmup, cell.max_new_tokens, docs[:n_docs], n_docs * sampling["samples"])
        if warmup or variant.compiled is not None
        else (0, None)
    )
    graphs_before = _graphs_compiled()
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
        from harness.kinds.eval.choice_rows import choice_metric_columns, choice_sample_rows

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
        **energy_ratios(energy, metrics["n"], metrics["n_correct"], metrics["output_tokens_total"]),
        "temperature": sampling["temperature"],
        "top_p": sampling["top_p"],
        "samples_per_doc": sampling["samples"],
        "warmup_requests": warmup,
        "warmup_time_s": warmup_time_s,
        **_compile_columns(variant, graphs_before),
        **prepared,
    }
    changed = {name: data for name, data in kept.items() if (files or {}).get(name) != data}
    return CellOutcome(cell_row=row, sample_rows=samples, telemetry_samples=variant.window_results[0].samples,
                       files=changed)


