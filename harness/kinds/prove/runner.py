"""Running one proving cell: sample attempts through the variant's decode loop (inside
telemetry windows), then check them in batches (outside the windows), round by round.

Generation reuses the variant (``adapter.wrap(base)``) as evaluation cells do: its
``generate_until`` batches the attempts, samples each from its own generator (seed
:func:`harness.variant.sample_seed` ``(seed, problem, attempt)``), times every token and opens
one telemetry window per round. The checker runs between and after the rounds, outside every
window: its time is ``check_time_s``, never part of latency, throughput or energy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness.core.cell import Cell, CellOutcome
from harness.core.rows import cell_metrics, energy_ratios, sample_row
from harness.kinds.eval.runner import WARMUP_TOKENS, warmup_requests
from harness.kinds.prove import checkers
from harness.kinds.prove.metrics import prove_columns
from harness.kinds.prove.strategy import rounds
from harness.kinds.prove.windows import merge_windows


@dataclass
class AttemptRequest:
    """What :meth:`harness.variant.GenerationVariant.generate_until` reads of a request (lm-eval's
    ``Instance`` fields), with the attempt index as ``sample``; ``idx`` 1 marks a CoT prompt."""

    args: tuple[str, dict]
    task_name: str
    doc_id: int
    idx: int
    sample: int
    doc: dict = field(default_factory=dict, repr=False)


def generation_kwargs(cell: Cell) -> dict[str, Any]:
    s = cell.settings
    sampling = s["temperature"] > 0
    kwargs: dict[str, Any] = {"until": [], "max_gen_toks": cell.max_new_tokens, "do_sample": sampling, "seed": cell.seed}
    if sampling:
        kwargs.update(temperature=s["temperature"], top_p=s["top_p"])
    return kwargs


def run_prove_cell(cell: Cell, base, telemetry, on_progress=None, files=None, checker=None) -> CellOutcome:
    """Run one proving cell (see the module docstring).

    Args:
        checker: a :class:`~.checkers.TaskChecker` to use (tests); default: built from the
            cell's ``checker`` settings.
    """
    from harness.adapters import ADAPTERS
    from harness.tasks.proving import get_proving_task

    s = cell.settings
    task = get_proving_task(cell.task)
    all_docs = task.load_docs()
    docs = all_docs[: cell.limit] if cell.limit else all_docs
    checker = checker or checkers.build(task, s["checker"], all_docs)
    adapter = ADAPTERS.get(cell.variant.adapter)(cell.params)
    variant = adapter.wrap(base, batch_size=cell.batch_size, max_new_tokens=cell.max_new_tokens)
    n, mode = s["samples"], s["cot_switch"]["mode"]
    plan = rounds(mode, n, s["cot_switch"].get("k1"))
    total = len(docs) * n
    done_before = 0

    def chat(doc: dict, cot: bool) -> str:
        return variant.apply_chat_template([{"role": "user", "content": task.prompt(doc, cot)}])

    warmup, warmup_time_s = warmup_requests(cell.warmup, max(1, int(getattr(variant, "batch_size", 1) or 1))), None
    if warmup:  # whole batches at the cell's batch size, outside the measured windows
        picked = [chat(docs[i % len(docs)], plan[0].cot) for i in range(warmup)]
        warmup_time_s = variant.warmup(picked, min(WARMUP_TOKENS, cell.max_new_tokens))
    variant.telemetry, variant.window_key = telemetry, cell.cell_hash
    if on_progress:
        variant.on_progress = lambda done: on_progress(done_before + done, total)
    kwargs = generation_kwargs(cell)
    proved: set[int] = set()
    samples: list[dict] = []
    batches: list[tuple[int, float]] = []
    for rnd in plan:
        todo = [d for d in docs if not (rnd.unproved_only and d["doc_id"] in proved)]
        requests = [AttemptRequest((chat(d, rnd.cot), kwargs), cell.task, d["doc_id"], int(rnd.cot), a, d)
                    for d in todo for a in range(rnd.first, rnd.first + rnd.count)]
        if not requests:
            continue
        replies = variant.generate_until(requests)  # one telemetry window (the variant opens it)
        done_before += len(requests)
        proofs = [task.extract(reply) for reply in replies]
        verdicts, ran = checker.check([(req.doc, proof) for req, proof in zip(requests, proofs)])
        batches += ran
        for req, reply, proof, verdict in zip(requests, replies, proofs, verdicts):
            if verdict.proved:
                proved.add(req.doc_id)
            stats = variant.stats[(cell.task, req.doc_id, req.idx, req.sample)]
            samples.append(sample_row(
                cell, req.doc_id, stats.prompt_text, sample=req.sample, attempt=req.sample,
                output_text=reply, extracted_answer=proof, reference=req.doc["name"],
                correct=1.0 if verdict.proved else 0.0, grade_reason=f"{verdict.status}: {verdict.message}",
                check_status=verdict.status, check_message=verdict.message, check_time_s=verdict.time_s,
                input_tokens=stats.input_tokens, output_tokens=stats.output_tokens,
                finish_reason=stats.finish_reason, latency_s=stats.latency_s, ttft_s=stats.ttft_s,
                tpot_s=stats.tpot_s, itl_s=stats.itl_s, queue_s=stats.queue_s, batch_size=stats.batch_size,
                counters_json=json.dumps({**stats.counters, "cot": int(rnd.cot)}, sort_keys=True),
            ))
    samples.sort(key=lambda r: (r["doc_id"], r["sample"]))
    telemetry_cols = merge_windows(variant.window_results)
    energy = telemetry_cols.get("energy_j")
    metrics = cell_metrics(samples, variant.generation_time_s)
    proving = prove_columns(samples, n, s["report_k"], mode == "switch", energy, seed=cell.seed)
    row = {
        **metrics,
        **telemetry_cols,
        **energy_ratios(energy, metrics["n"], metrics["n_correct"], metrics["output_tokens_total"]),
        **proving,
        "check_time_s": sum(t for _, t in batches),  # the checker's wall time, outside every window
        "check_batches": len(batches),
        "checker_json": json.dumps(checker.describe(), sort_keys=True),
        "param_bytes": variant.param_bytes,
        "temperature": s["temperature"],
        "top_p": s["top_p"],
        "samples_per_doc": n,
        "warmup_requests": warmup,
        "warmup_time_s": warmup_time_s,
    }
    return CellOutcome(cell_row=row, sample_rows=samples,
                       telemetry_samples=[x for w in variant.window_results for x in w.samples])
