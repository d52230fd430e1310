"""Suite fields shared by several cell kinds: the top-level ``defaults`` and a variant."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.core.refs import DEVICE_PATTERN, DTYPES

NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"
SAMPLING_KEYS = ("samples", "temperature", "top_p")  # in hashes only when sampling is on


class Strict(BaseModel):
    """Base of every suite model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(Strict):
    """Per-cell settings a variant may override.

    Attributes:
        limit: samples per task (first ``limit`` documents); ``None`` = the whole task.
        batch_size: requests decoded together (left padding).
        max_new_tokens: generation cap per request, in tokens.
        seed: random seed (lm-eval's seeds; when sampling, each sample's generator seed is
            derived from it, the doc id and the sample index: :func:`harness.variant.sample_seed`).
        repeats: how many times each cell is run (timing spread; CV reported in the summary).
        warmup: requests decoded before each cell's measured window (0 = none), rounded up to
            whole batches at the cell's batch size: excluded from every figure, their wall time
            reported as ``warmup_time_s`` (the cold start).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        samples: responses generated per doc (lm-eval ``repeats``); one sample row each, and
            the cell's accuracy is the mean over all of them. More than 1 needs ``temperature > 0``.
        temperature: ``0`` = greedy decoding (the default); ``> 0`` = sampling at that temperature.
        top_p: nucleus sampling mass (``0 < top_p <= 1``; 1 = off); below 1 needs ``temperature > 0``.

    Sampling is *on* when ``samples > 1``, ``temperature > 0`` or ``top_p < 1`` (valid only
    with ``temperature > 0``); only then do these three keys enter the suite's canonical form
    and the cells' identity, so greedy suites keep their hashes. Generation tasks only.
    """

    limit: int | None = Field(None, ge=1)
    batch_size: int = Field(1, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0
    repeats: int = Field(1, ge=1)
    warmup: int = Field(1, ge=0)
    device: str = Field("auto", pattern=DEVICE_PATTERN)
    samples: int = Field(1, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)

    @property
    def sampling(self) -> bool:
        """Sampling is on (see the class docstring)."""
        return self.samples > 1 or self.temperature > 0 or self.top_p < 1

    @model_validator(mode="after")
    def _sampling_needs_temperature(self) -> "Defaults":
        if self.temperature == 0 and self.samples > 1:
            raise ValueError(
                f"samples: {self.samples} with temperature 0 would decode the same greedy output "
                f"{self.samples} times; set temperature > 0 to sample"
            )
        if self.temperature == 0 and self.top_p < 1:
            raise ValueError(f"top_p: {self.top_p} has no effect with temperature 0 (greedy); set temperature > 0")
        return self


class Variant(Strict):
    """One technique variant: an adapter with params, at a precision."""

    name: str = Field(pattern=NAME_PATTERN)
    adapter: str
    params: dict[str, Any] = Field(default_factory=dict)
    dtype: str = "fp32"
    batch_size: int | None = Field(None, ge=1)
    length_changing: bool = False
    compile: bool | None = Field(
        None,
        description="decode steps through torch.compile over a static KV cache (harness/compiled_step.py); "
        "unset = off. Part of the cell and params hashes when set, so a compiled and an eager copy "
        "of one variant are two variants",
    )

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise ValueError(f"unknown dtype {value!r}; choose one of {sorted(DTYPES)}")
        return value




class ExecutorSettings(Strict):
    """Where a suite's cells run (``executor:`` in a suite; ``harness run --executor`` wins).

    Not part of the run's identity: switching executors resumes the same run.

    Attributes:
        name: a registered executor (``local``: in-process; ``ray``: a Ray cluster).
        address: Ray only: ``auto`` (the cluster this machine belongs to), ``ray://host:10001``
            (Ray Client), or ``None`` (start a local Ray instance for the run, shut down after).
        max_retries: Ray only: how often a group whose worker died is retried (its unfinished
            cells) before those cells are written as errors.
        chunk_size: Ray only: cells per Ray task; ``None`` splits each group over the cluster's
            free worker slots. A cell's repeats always stay in one task (one GPU).
    """

    name: str = "local"
    address: str | None = None
    max_retries: int = Field(1, ge=0)
    chunk_size: int | None = Field(None, ge=1)


class Resources(Strict):
    """What one worker asks for (``resources:`` in a suite; used by executors that place work,
    e.g. Ray). GPU groups ask for ``num_gpus``, CPU groups only for ``num_cpus``.

    Attributes:
        num_cpus: CPU cores per worker (also its torch threads).
        num_gpus: whole GPUs per worker of a GPU run (fractional GPUs are refused: two workers
            on one GPU would measure each other).
    """

    num_cpus: float = Field(1.0, gt=0)
    num_gpus: int = Field(1, ge=0)
