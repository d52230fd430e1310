"""The ``finetune:`` section of a suite: training cells (encoder × variant × task × seed × repeat)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from harness.config.fields import NAME_PATTERN, Strict


class TrainOverrides(Strict):
    """Training settings a task (``per_task``) or a fine-tuning variant may override."""

    steps: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    max_grad_norm: float | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=8)
    eval_batch_size: int | None = Field(None, ge=1)
    eval_limit: int | None = Field(None, ge=1)


class FinetuneDefaults(Strict):
    """Training-cell settings (see :class:`harness.finetune.TrainSettings`).

    Attributes:
        steps: optimizer steps per cell.
        batch_size: training examples per step.
        learning_rate: peak AdamW learning rate (linear warm-up then decay).
        weight_decay, warmup_ratio, max_grad_norm: optimiser settings.
        max_length: tokens per example (truncation).
        eval_batch_size: validation examples per forward.
        eval_limit: first ``eval_limit`` validation documents (``None`` = all).
        seeds: one cell per seed (head initialisation, data order, dropout).
        repeats: cells per seed (timing spread; same seed).
    """

    steps: int = Field(60, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, ge=0)
    max_length: int = Field(128, ge=8)
    eval_batch_size: int = Field(64, ge=1)
    eval_limit: int | None = Field(None, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    repeats: int = Field(1, ge=1)


class FinetuneVariant(TrainOverrides):
    """One fine-tuning technique variant (adapter of :data:`harness.finetune.FINETUNE_ADAPTERS`)."""

    name: str = Field(pattern=NAME_PATTERN)
    adapter: str
    params: dict[str, Any] = Field(default_factory=dict)
    dtype: str = "fp32"

    @field_validator("dtype")
    @classmethod
    def _fp32(cls, value: str) -> str:
        if value != "fp32":
            raise ValueError(f"training cells run in fp32 only, got {value!r}")
        return value

    @property
    def length_changing(self) -> bool:  # the gate's output-length check does not apply
        return False


class Finetune(Strict):
    """The ``finetune:`` section: training cells (encoder × variant × task × seed × repeat)."""

    models: list[str] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    variants: list[FinetuneVariant] = Field(min_length=1)
    defaults: FinetuneDefaults = FinetuneDefaults()
    per_task: dict[str, TrainOverrides] = Field(default_factory=dict)

    def settings(self, variant: FinetuneVariant, task: str) -> dict[str, Any]:
        """Resolved training settings of one cell: defaults < ``per_task`` < variant."""
        out = self.defaults.model_dump(exclude={"seeds", "repeats"})
        for layer in (self.per_task.get(task), variant):
            for key in TrainOverrides.model_fields if layer is not None else ():
                if getattr(layer, key) is not None:
                    out[key] = getattr(layer, key)
        return out
