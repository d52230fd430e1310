"""Calibration of ``think_budget``'s effort modes: the High mode's mean reasoning length.

ThinkDial ("ThinkDial: An Open Recipe for Controlling Reasoning Effort in Large Language
Models", arXiv 2508.18773) defines Medium and Low by their reasoning length relative to High;
we set their budgets to 0.5x and 0.25x of the High mode's mean reasoning tokens, measured here.

The calibration split is a fixed slice of the task held out from evaluation: its **last**
``n_docs`` problems (GSM8K and MATH-500 ship only a test split here). A cell evaluates the
first ``limit`` docs, so :func:`calibration_slice` refuses a ``limit`` that would reach into
the slice. Calibration runs outside the cell's telemetry window (it is a one-off cost, not
part of the measured figures); its wall time is reported separately.

Cache: calibrations are keyed by everything that determines them (model id, dtype, device,
chat template, task and version, slice, token cap, batch size, the High system prompt, the
reasoning format, the answer budget and cue) and kept in ``<run dir>/think_budget_calibration.json``
(handed in and back through ``CellContext.files``; the driver writes it), so Medium and Low of
one run, and a resumed run, reuse High's calibration. Outside a run nothing is cached.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from harness.adapters.reasoning_format import chat_prompt, detect_format
from harness.generation import DecodePolicy, GenerationSettings, eos_ids, generate
from harness.telemetry.clock import monotonic_s

CACHE_FILE = "think_budget_calibration.json"
CALIBRATION_FORMAT = 1  # bump when what a calibration measures changes (invalidates caches)


def calibration_slice(n_total: int, n_docs: int, limit: int | None, task: str) -> tuple[int, int]:
    """``(start, stop)`` doc indices of the calibration slice: the last ``n_docs`` of ``n_total``.

    Raises:
        ValueError: the slice would be the whole task, or the evaluated docs ``[0, limit)``
            (the whole task when ``limit`` is ``None``) would overlap it.
    """
    if n_docs >= n_total:
        raise ValueError(f"{task}: calibration_docs={n_docs} leaves no docs to evaluate ({n_total} in the task)")
    start = n_total - n_docs
    evaluated = n_total if limit is None else min(limit, n_total)
    if evaluated > start:
        raise ValueError(
            f"{task}: the cell evaluates docs [0, {evaluated}) but docs [{start}, {n_total}) are the calibration "
            f"slice held out from evaluation; use limit <= {start} or fewer calibration_docs"
        )
    return start, n_total


@dataclass(frozen=True)
class HighCalibration:
    """The High mode measured on a calibration slice.

    Attributes:
        task, task_version: the task.
        doc_start, doc_stop: the slice ``[doc_start, doc_stop)`` of the task's docs.
        reasoning_tokens: per calibration doc, in slice order.
        mean_reasoning_tokens: their mean (the High mode's mean reasoning length).
        high_budget: the High mode's own reasoning budget (the cap less the answer budget).
        max_new_tokens: the token cap it ran under.
        measured_time_s: wall time of the measurement when it ran.
    """

    task: str
    task_version: str
    doc_start: int
    doc_stop: int
    reasoning_tokens: list[float]
    mean_reasoning_tokens: float
    high_budget: int
    max_new_tokens: int
    measured_time_s: float

    @property
    def n(self) -> int:
        return self.doc_stop - self.doc_start

    def budget(self, scale: float) -> int:
        """``scale`` x the mean reasoning length, rounded half up, at least 1 token."""
        return max(1, math.floor(scale * self.mean_reasoning_tokens + 0.5))

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "n": self.n, "slice": f"docs[{self.doc_start}:{self.doc_stop}]"}


def read_kept_json(files: dict[str, bytes] | None, name: str) -> dict[str, Any]:
    """The JSON mapping an adapter kept in the run directory as ``name`` (``CellContext.files``);
    ``{}`` when absent or damaged (a damaged cache is only a cache: measure again)."""
    data = (files or {}).get(name)
    if not data:
        return {}
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}


def calibrate_high(
    base,
    spec,
    docs: list[dict],
    context,
    n_docs: int,
    system_prompt: str,
    high_budget: int,
    policy_factory: Callable[[], DecodePolicy],
    key_extra: dict[str, Any],
) -> tuple[HighCalibration, float]:
    """Measure (or reuse) the High mode's mean reasoning length on the task's held-out slice.

    Args:
        base: the shared base model; ``spec``, ``docs``: the task and all its docs.
        context: the cell's :class:`harness.adapters.base.CellContext`.
        n_docs: size of the calibration slice.
        system_prompt: the High mode's system prompt.
        high_budget: the High mode's reasoning budget (the cap less the answer budget; recorded).
        policy_factory: a fresh High-mode decode policy per batch (``think_budget`` passes its
            budget forcing, whose rows report the ``reasoning_tokens`` counter measured here).
        key_extra: further settings that change the measurement (go into the cache key).

    Returns:
        The calibration and the seconds spent measuring in this call (0.0 when reused).

    Raises:
        ValueError: the evaluated docs would overlap the calibration slice.
    """
    from harness.core.hashing import stable_hash

    start, stop = calibration_slice(len(docs), n_docs, context.limit, spec.name)
    fmt = detect_format(base.tokenizer)
    key = stable_hash(
        {
            "format": CALIBRATION_FORMAT,
            "model": base.canonical_id,
            "dtype": base.dtype,
            "device": str(base.device),
            "chat_template": base.chat_template_hash,
            "task": spec.name,
            "task_version": spec.version,
            "slice": [start, stop],
            "max_new_tokens": context.max_new_tokens,
            "batch_size": context.batch_size,
            "system_prompt": system_prompt,
            "reasoning_format": fmt.kind,
            **key_extra,
        }
    )
    cached = read_kept_json(context.files, CACHE_FILE).get(key)
    if cached is not None:
        return HighCalibration(**cached), 0.0

    began = monotonic_s()
    tok = base.tokenizer
    prompts = [
        tok(chat_prompt(tok, [{"role": "user", "content": spec.prompt(doc)}], system_prompt), add_special_tokens=False)[
            "input_ids"
        ]
        for doc in docs[start:stop]
    ]
    settings = GenerationSettings(max_new_tokens=context.max_new_tokens, eos_token_ids=eos_ids(base.model, tok))
    reasoning: list[float] = []
    for result in generate(base.model, tok, prompts, settings, policy_factory(), batch_size=context.batch_size):
        reasoning.append(result.counters["reasoning_tokens"])
    spent_s = monotonic_s() - began
    calibration = HighCalibration(
        task=spec.name,
        task_version=spec.version,
        doc_start=start,
        doc_stop=stop,
        reasoning_tokens=reasoning,
        mean_reasoning_tokens=sum(reasoning) / len(reasoning),
        high_budget=high_budget,
        max_new_tokens=context.max_new_tokens,
        measured_time_s=spent_s,
    )
    if context.files is not None:
        entries = read_kept_json(context.files, CACHE_FILE)
        entries[key] = asdict(calibration)
        context.files[CACHE_FILE] = json.dumps(entries, indent=1, sort_keys=True).encode()
    return calibration, spent_s
