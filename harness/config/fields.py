"""Suite fields shared by several cell kinds: the top-level ``defaults`` and a variant."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.core.refs import DEVICE_PATTERN, DTYPES

NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class Strict(BaseModel):
    """Base of every suite model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(Strict):
    """Per-cell settings a variant may override.

    Attributes:
        limit: samples per task (first ``limit`` documents); ``None`` = the whole task.
        batch_size: requests decoded together (left padding).
        max_new_tokens: generation cap per request, in tokens.
        seed: random seed (recorded; decoding is greedy).
        repeats: how many times each cell is run (timing spread; CV reported in the summary).
        warmup: requests decoded before each cell's measured window (0 = none): excluded from
            every figure, their wall time reported as ``warmup_time_s`` (the cold start).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
    """

    limit: int | None = Field(None, ge=1)
    batch_size: int = Field(1, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0
    repeats: int = Field(1, ge=1)
    warmup: int = Field(1, ge=0)
    device: str = Field("auto", pattern=DEVICE_PATTERN)


class Variant(Strict):
    """One technique variant: an adapter with params, at a precision."""

    name: str = Field(pattern=NAME_PATTERN)
    adapter: str
    params: dict[str, Any] = Field(default_factory=dict)
    dtype: str = "fp32"
    batch_size: int | None = Field(None, ge=1)
    length_changing: bool = False

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise ValueError(f"unknown dtype {value!r}; choose one of {sorted(DTYPES)}")
        return value


