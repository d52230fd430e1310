"""The ``prove:`` section of a suite: proving cells (model × variant × proving task × repeat).

```yaml
prove:
  models: [embedded]
  tasks: [minif2f_metamath_valid]
  defaults: {limit: 8, samples: 4, temperature: 0.8, top_p: 0.95, max_new_tokens: 96, batch_size: 8,
             seed: 0, report_k: [1, 4]}
  checker: {timeout_s: 30, batch_size: 256}
  variants:
    - {name: baseline, adapter: baseline}                                   # cot_switch: never
    - {name: cot-always, adapter: baseline, cot_switch: {mode: always}}
    - {name: cot-switch, adapter: baseline, cot_switch: {mode: switch, k1: 2}}
```
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.config.fields import NAME_PATTERN, Strict
from harness.core.refs import DTYPES


class CotSwitch(Strict):
    """EconProver's dynamic chain-of-thought switch as a cascade (see :mod:`.strategy`).

    Attributes:
        mode: ``never`` = every attempt asks for the proof only; ``always`` = every attempt
            reasons first; ``switch`` = ``k1`` proof-only attempts per problem, then, for the
            problems still unproved, ``samples - k1`` attempts that reason first.
        k1: ``switch`` only: the proof-only attempts (``1 <= k1 < samples``).
    """

    mode: Literal["never", "always", "switch"] = "never"
    k1: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _k1_for_switch(self) -> CotSwitch:
        if self.mode == "switch" and self.k1 is None:
            raise ValueError("mode switch needs k1 (the proof-only attempts before reasoning ones)")
        if self.mode != "switch" and self.k1 is not None:
            raise ValueError(f"k1 applies to mode switch only, not {self.mode!r}")
        return self


class ProveVariant(Strict):
    """One technique variant on proving tasks: any generation adapter, plus the CoT strategy."""

    name: str = Field(pattern=NAME_PATTERN)
    adapter: str
    params: dict[str, Any] = Field(default_factory=dict)
    dtype: str = "fp32"
    batch_size: int | None = Field(None, ge=1)
    cot_switch: CotSwitch = CotSwitch()
    length_changing: bool = False

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise ValueError(f"unknown dtype {value!r}; choose one of {sorted(DTYPES)}")
        return value


class ProveDefaults(Strict):
    """Settings of every proving cell.

    Attributes:
        limit: the first ``limit`` problems of the task (``None`` = all).
        samples: attempts per problem, ``n`` (the budget of a ``switch`` cascade).
        temperature, top_p: sampling (``samples > 1`` or ``top_p < 1`` needs ``temperature > 0``);
            attempt ``a`` of problem ``d`` draws from its own generator seeded
            :func:`harness.variant.sample_seed` ``(seed, d, a)``.
        max_new_tokens: generation cap per attempt; ``batch_size``: attempts decoded together.
        seed, repeats, warmup: as the top-level defaults (the device is the suite's ``defaults.device``).
        report_k: a ``pass_at_<k>`` column for each (``k <= samples``; ``pass_at_k_json`` holds
            every ``k <= samples`` anyway); 1 is always reported.
    """

    limit: int | None = Field(None, ge=1)
    samples: int = Field(1, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(1, ge=1)
    seed: int = 0
    repeats: int = Field(1, ge=1)
    warmup: int = Field(1, ge=0)
    report_k: list[int] = Field(default_factory=lambda: [1])

    @model_validator(mode="after")
    def _consistent(self) -> ProveDefaults:
        if self.temperature == 0 and self.samples > 1:
            raise ValueError(f"samples: {self.samples} with temperature 0 would decode the same greedy attempt "
                             f"{self.samples} times; set temperature > 0 to sample")
        if self.temperature == 0 and self.top_p < 1:
            raise ValueError(f"top_p: {self.top_p} has no effect with temperature 0 (greedy); set temperature > 0")
        bad = [k for k in self.report_k if not 1 <= k <= self.samples]
        if bad:
            raise ValueError(f"report_k {bad}: pass@k is defined for 1 <= k <= samples ({self.samples}) only")
        if len(set(self.report_k)) != len(self.report_k):
            raise ValueError(f"report_k {self.report_k} repeats a value")
        return self

    @property
    def reported_k(self) -> list[int]:
        """``report_k`` with 1, sorted."""
        return sorted({1, *self.report_k})


class ProveChecker(Strict):
    """The proof checker's settings (timeouts are left out of cell identity, as elsewhere).

    Attributes:
        timeout_s: seconds per attempt (Metamath: per attempt of a batch; Lean: per snippet).
        read_timeout_s: Metamath: seconds to start a process and read set.mm, per batch.
        batch_size: attempts per checker batch (one metamath process each).
        lean_repl: a Lean project folder where ``lake exe repl`` runs (Lean tasks).
        lean_url: a Kimina Lean Server URL (Lean tasks); ``lean_api_key_env``: the variable
            holding its key.
        allow_native_decide: Lean: accept ``native_decide`` (``Lean.ofReduceBool``); recorded in
            the cell's identity.
    """

    timeout_s: float = Field(30.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0)
    batch_size: int = Field(256, ge=1)
    lean_repl: str | None = None
    lean_url: str | None = None
    lean_api_key_env: str | None = None
    allow_native_decide: bool = False

    @model_validator(mode="after")
    def _one_lean_backend(self) -> ProveChecker:
        if self.lean_repl and self.lean_url:
            raise ValueError("give lean_repl or lean_url, not both")
        return self


class Prove(Strict):
    """The ``prove:`` section (see the module docstring)."""

    models: list[str] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    variants: list[ProveVariant] = Field(min_length=1)
    defaults: ProveDefaults = ProveDefaults()
    checker: ProveChecker = ProveChecker()
