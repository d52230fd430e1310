"""The fine-tuning adapter contract (the training cells' counterpart of ``harness.adapters``).

A fine-tuning technique turns a freshly built classification model (pretrained encoder + new
head, :meth:`harness.finetune.encoder.EncoderBase.build`) into a trainable model: which
parameters train, what the forward computes, what the loss is, what state must be stored per
task. ``FinetuneAdapter(params).fit(ctx)`` trains it for the cell's steps and returns a
:class:`~harness.finetune.train.FitResult`; the cell kind (:mod:`harness.kinds.finetune`) evaluates
and records it. The optimisation settings (:class:`~harness.finetune.train.TrainSettings`) and that
result live with the shared training loop in :mod:`harness.finetune.train` (which does not import
this module: the dependency goes one way).

A module per technique declares its registry name (``@register_finetune("lora")``), the
paper (title, arXiv id), a pydantic ``Params`` (``extra="forbid"``) and its counters. The
pretrained encoder shared by a group of cells is never mutated: every cell builds its own
model (tests check this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from pydantic import BaseModel as PydanticModel
from pydantic import ConfigDict

from harness.core.registry import Registry
from harness.finetune.train import FitResult, TrainSettings, train_model


class FinetuneParams(PydanticModel):
    """Base of every fine-tuning adapter's params: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class FitContext:
    """What :meth:`FinetuneAdapter.fit` gets from the cell runner.

    Attributes:
        build: ``build(num_labels, seed) -> model``: a fresh classification model.
        task: the cell's task (:class:`harness.finetune.data.GlueTask`).
        data: training data (:class:`harness.finetune.train.TrainData`): batch streams and a
            held-out slice of the train split for techniques that select configurations.
        settings: :class:`harness.finetune.train.TrainSettings`.
        seed: the cell's seed (head init, data order, dropout).
        device: torch device string.
        on_step: progress callback ``(done, total)``.
    """

    build: Callable[[int, int], Any]
    task: Any
    data: Any
    settings: TrainSettings
    seed: int
    device: str = "cpu"
    on_step: Callable[[int, int], None] | None = None


class FinetuneAdapter:
    """A fine-tuning technique. Subclass, set the class attributes, register.

    Class attributes:
        name: registry name (set by the decorator).
        paper: the paper's title ("" for the full fine-tuning reference).
        arxiv: arXiv id (``None`` when there is none).
        Params: the pydantic params model.
        counters: counter name → description (cells store ``counter_<name>``).
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    arxiv: ClassVar[str | None] = None
    Params: ClassVar[type[FinetuneParams]] = FinetuneParams
    counters: ClassVar[dict[str, str]] = {}

    def __init__(self, params: FinetuneParams | dict[str, Any] | None = None):
        if not isinstance(params, FinetuneParams):
            params = self.Params(**(params or {}))
        self.params = params

    # -- validation ------------------------------------------------------------------
    def check(self, task: str) -> None:
        """Reject a cell this technique cannot run (``ValueError``); called at suite validation."""

    def tasks(self, task: str) -> list[str]:
        """Tasks trained together in a cell of ``task`` (``task`` first); default: just it."""
        return [task]

    def holdout_docs(self) -> int:
        """Train-split documents held out of training for the technique's own selection."""
        return 0

    # -- the technique ------------------------------------------------------------------
    def num_labels(self, ctx: FitContext) -> int:
        """Logits of the head the technique trains (default: the cell task's labels)."""
        return ctx.task.num_labels

    def prepare(self, model, ctx: FitContext):
        """Make ``model`` trainable the technique's way and return the module to train.

        Default (full fine-tuning): every parameter trains, the model is returned as is.
        """
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def logits(self, model, batch: dict[str, Any]):
        """Training forward: ``[B, num_labels]`` logits for ``batch`` (the model's own forward)."""
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        return model(**inputs).logits

    def loss(self, model, batch: dict[str, Any]):
        """Scalar training loss (default: cross-entropy of :meth:`logits`)."""
        import torch.nn.functional as F

        return F.cross_entropy(self.logits(model, batch), batch["labels"])

    def predict(self, model, batch: dict[str, Any]) -> dict[str, Any]:
        """Evaluation logits by output name; ``""`` is the cell's headline output (default: one)."""
        return {"": self.logits(model, batch)}

    def result_counters(self, model) -> dict[str, float]:
        """The technique's counters after training (``counters`` names → values)."""
        return {}

    def adapter_state(self, model) -> dict[str, Any]:
        """The trained state that is stored per task (default: every trainable parameter)."""
        return {n: p for n, p in model.named_parameters() if p.requires_grad}

    def load_adapter_state(self, model, state: dict[str, Any]) -> None:
        """Copy a stored :meth:`adapter_state` into ``model`` (what switching tasks costs)."""
        import torch

        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    def fit(self, ctx: FitContext) -> FitResult:
        """Build, prepare and train the model for ``ctx.settings.steps`` steps."""
        model = self.prepare(ctx.build(self.num_labels(ctx), ctx.seed), ctx)
        stream = ctx.data.stream(ctx.settings.steps, ctx.settings.batch_size, ctx.seed)
        result = train_model(self, model, stream, ctx.settings, ctx.seed, ctx.on_step)
        result.counters.update(self.result_counters(model))
        return result


FINETUNE_ADAPTERS: Registry[FinetuneAdapter] = Registry("fine-tuning adapter", FinetuneAdapter)


def register_finetune(name: str) -> Callable[[type[FinetuneAdapter]], type[FinetuneAdapter]]:
    """Class decorator: ``@register_finetune("lora")``."""
    return FINETUNE_ADAPTERS.register(name)
