"""The adapter contract: a technique turns a shared base model into a *variant*.

An adapter module declares, next to its code: the registry name, the paper (title and
arXiv id), a pydantic ``Params`` model (``extra="forbid"``), and the counters it reports.
``Adapter(params).wrap(base)`` returns a :class:`harness.variant.GenerationVariant`, the
``lm_eval.api.model.LM`` that lm-eval evaluates. Adapters themselves do not import lm-eval,
so their decode policies also run where only torch is installed (the GPU check).

Rules (DESIGN.md §3): ``wrap`` never mutates the base model that other variants share
(copy what changes, or use hooks removed afterwards); the decode loop is shared
(:mod:`harness.generation`); a technique is a :class:`~harness.generation.DecodePolicy`
and/or a model transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from pydantic import BaseModel as PydanticModel
from pydantic import ConfigDict

from harness.generation import DecodePolicy
from harness.core.registry import Registry


class AdapterParams(PydanticModel):
    """Base of every adapter's params: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class CellContext:
    """What an evaluation cell tells its adapter before wrapping (see :meth:`Adapter.prepare`).

    Attributes:
        limit: the cell evaluates the task's first ``limit`` docs (``None``: all of them).
        batch_size: requests decoded together.
        max_new_tokens: the task's token cap per request.
        files: the files this adapter keeps in the run directory (``kept_files``), ``name →
            bytes``: what earlier cells or a resumed run left, updated in place with what to keep
            (the driver writes them; an adapter never writes into the results folder).
            ``None`` outside a run: nothing is kept.
    """

    limit: int | None
    batch_size: int
    max_new_tokens: int
    files: dict[str, bytes] | None = None


class Adapter:
    """A technique. Subclass, set the class attributes, register with :func:`register_adapter`.

    Class attributes:
        name: registry name (set by the decorator).
        paper: the paper's title ("" for the reference baseline).
        arxiv: arXiv id, e.g. ``"2508.18773"`` (``None`` when there is none).
        Params: the pydantic params model.
        counters: counter name → description; each request reports these in
            ``RequestStats.counters`` and cells aggregate them as ``counter_<name>_mean``.
        batchable: whether requests can be decoded in batches (else batch size 1).
        supports_loglikelihood: the technique is a model transform (``prepare_model``) whose
            plain forward pass is the whole technique, so log-likelihood tasks measure it.
            ``False`` (the default) for techniques that live in the decode loop (early exit,
            budget forcing, model switching, speculation): suites refuse to pair those with
            log-likelihood tasks before anything loads.
        kept_files: run-directory files :meth:`prepare` reads and updates through
            ``CellContext.files`` (e.g. a calibration reused by later cells and resumed runs).
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    arxiv: ClassVar[str | None] = None
    Params: ClassVar[type[AdapterParams]] = AdapterParams
    counters: ClassVar[dict[str, str]] = {}
    batchable: ClassVar[bool] = True
    supports_loglikelihood: ClassVar[bool] = False
    kept_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: AdapterParams | dict[str, Any] | None = None):
        if not isinstance(params, AdapterParams):
            params = self.Params(**(params or {}))
        self.params = params

    def check(self, max_new_tokens: int) -> None:
        """Reject params that cannot take effect under the suite's token cap (``ValueError``).

        Called at suite validation, before anything loads. Default: nothing to check.
        """

    def check_device(self, device: str, dtype: str) -> None:
        """Reject a resolved device (``cpu`` / ``cuda[:N]``) and dtype (``fp32`` / ``bf16`` /
        ``fp16``) the technique cannot run on (``ValueError``, one line; e.g. ``int4`` without an
        int4 kernel there). Called by ``harness run`` once the device is resolved, before any model
        loads. Default: runs anywhere.
        """

    def prepare(self, base, spec, docs: list[dict], context: CellContext) -> dict[str, Any]:
        """Work the variant needs from the cell's task before :meth:`wrap` (e.g. a calibration on
        docs held out from evaluation). The cell runner calls it outside the telemetry window.

        Args:
            base: the shared base model (never mutated).
            spec: the cell's :class:`harness.tasks.spec.TaskSpec`; ``docs``: all its docs.
            context: the cell's evaluation settings.

        Returns:
            Extra cell columns (schema names, e.g. ``calibration_json``); default: none.
        """
        return {}

    def needs_preparation(self) -> str | None:
        """Why :meth:`wrap` cannot run before :meth:`prepare` has run on a task (e.g. a budget
        set by a calibration on the task's docs), in one sentence; ``None`` (the default) when
        the variant works unprepared.

        Callers that have no evaluation cell use it before anything loads: ``harness serve``
        prepares such a variant on its ``--calibration-task`` or exits 2, and suite validation
        refuses it in an ``agents:`` section (:func:`harness.kinds.agents.runner.check_servable`).
        """
        return None

    def prepare_model(self, base) -> Any:
        """The torch model this variant runs; default: the shared base model itself."""
        return base.model

    def make_policy(self, tokenizer) -> DecodePolicy:
        """A fresh decode policy for one batch; default: plain greedy decoding."""
        return DecodePolicy()

    def wrap(self, base, batch_size: int = 1, max_new_tokens: int = 256):
        """Build the variant of ``base`` (a :class:`harness.models.BaseModel`).

        Args:
            base: the shared base model (never mutated).
            batch_size: requests decoded together (forced to 1 when not ``batchable``).
            max_new_tokens: default token cap when a request does not set ``max_gen_toks``.
        """
        from harness.models import param_bytes
        from harness.variant import GenerationVariant

        model = self.prepare_model(base)
        return GenerationVariant(
            model=model,
            tokenizer=base.tokenizer,
            policy_factory=lambda: self.make_policy(base.tokenizer),
            batch_size=batch_size if self.batchable else 1,
            max_new_tokens=max_new_tokens,
            param_bytes=param_bytes(model),
            name=base.canonical_id,
            supports_loglikelihood=self.supports_loglikelihood,
        )


def check_companion_ref(ref: str, key: str) -> None:
    """Suite-time check of a second model's reference (nothing loads): ``ValueError`` naming
    ``key`` (the params field, e.g. ``draft_model``) when ``ref`` cannot be resolved."""
    from harness.core.refs import model_ref_problem

    problem = model_ref_problem(ref)
    if problem:
        raise ValueError(f"{key}: {problem}")


def load_companion(ref: str, base, dtype: str | None = None):
    """Load a second model that a technique runs next to ``base`` (a draft model, a small or a
    large companion), where the variant can run it with ``base``.

    It goes through :func:`harness.models.load` like every base model (so a GGUF file's converted
    weights are cached under ``$HARNESS_CACHE_DIR`` and reused); it is loaded afresh on each call
    (nothing is shared between variants) on ``base``'s device, at ``dtype`` (default: ``base``'s).
    Checking that it fits ``base`` (e.g. the same tokenizer) is the caller's.

    Args:
        ref: the model reference (any form :func:`harness.models.load` accepts).
        base: the shared base model (:class:`harness.models.BaseModel`; never mutated).
        dtype: ``fp32`` | ``bf16`` | ``fp16``; ``None``: ``base.dtype``.

    Returns:
        A :class:`harness.models.BaseModel`.

    Raises:
        harness.models.ModelError: ``ref`` cannot be resolved or loaded.
    """
    from harness import models

    return models.load(ref, dtype=dtype or base.dtype, device=base.device)


ADAPTERS: Registry[Adapter] = Registry("adapter", Adapter)


def register_adapter(name: str) -> Callable[[type[Adapter]], type[Adapter]]:
    """Class decorator: ``@register_adapter("baseline")``."""
    return ADAPTERS.register(name)


