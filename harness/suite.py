"""Suites: YAML files that sweep technique variants over tasks.

A suite is pure data: loading and validating one touches no model, GPU or network (only
the YAML file itself). Expanding it into *cells* (model × variant × task × repeat) also
resolves each model reference to its canonical id (which hashes a GGUF file, not a load).

Example (``suites/reasoning.yaml``)::

    name: reasoning
    models: [embedded]
    tasks: [gsm8k, math500]
    defaults: {limit: 8, batch_size: 8, max_new_tokens: 256}
    variants:
      - {name: baseline, adapter: baseline}
      - {name: budget-64, adapter: think_budget, params: {max_reasoning_tokens: 64}}

A suite may also (or only) hold a ``finetune:`` section: training cells that fine-tune an
encoder on GLUE train splits with the fine-tuning techniques of :mod:`harness.finetune`, run
through the same executor, resume and results store (``suites/nlu.yaml``)::

    finetune:
      models: [minilm-l6]
      tasks: [sst2, rte]
      defaults: {steps: 60, batch_size: 32, learning_rate: 1.0e-4, max_length: 64, seeds: [0]}
      per_task: {rte: {batch_size: 16, max_length: 128}}
      variants:
        - {name: full_ft, adapter: full_ft}
        - {name: lora-r8, adapter: lora, params: {r: 8}, learning_rate: 1.0e-3}

A suite may also (or only) hold an ``agents:`` section: agent cells that serve each variant
behind the OpenAI-compatible server and run τ²-bench against it (:mod:`harness.agents`,
``suites/agentic.yaml``); one cell = model × variant × τ² domain × repeat::

    agents:
      models: [embedded]
      domains: {mock: {task_ids: [create_task_1, update_task_1]}}
      defaults: {trials: 1, max_steps: 8, max_tokens: 96, seed: 300}
      user: {model: embedded, adapter: baseline}   # the same user simulator for every variant
      judge: null                                  # no NL-assertion judge → reward_db_only
      variants:
        - {name: baseline, adapter: baseline}

Every error names the file and the key, e.g.
``suites/x.yaml: variants[1].adapter: unknown adapter 'baslein'; did you mean 'baseline'?``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.models import DTYPES

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
CELL_FORMAT = 1  # bump when the meaning of a cell changes (invalidates resume)
SAMPLING_KEYS = ("samples", "temperature", "top_p")  # in hashes only when sampling is on


class SuiteError(ValueError):
    """A suite that cannot be used; ``str()`` is one line naming the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    """Per-cell settings a variant may override.

    Attributes:
        limit: samples per task (first ``limit`` documents); ``None`` = the whole task.
        batch_size: requests decoded together (left padding).
        max_new_tokens: generation cap per request, in tokens.
        seed: random seed (lm-eval's seeds; when sampling, each sample's generator seed is
            derived from it, the doc id and the sample index: :func:`harness.variant.sample_seed`).
        repeats: how many times each cell is run (timing spread; CV reported in the summary).
        warmup: requests decoded before each cell's measured window (0 = none): excluded from
            every figure, their wall time reported as ``warmup_time_s`` (the cold start).
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
    def _sampling_needs_temperature(self) -> Defaults:
        if self.temperature == 0 and self.samples > 1:
            raise ValueError(
                f"samples: {self.samples} with temperature 0 would decode the same greedy output "
                f"{self.samples} times; set temperature > 0 to sample"
            )
        if self.temperature == 0 and self.top_p < 1:
            raise ValueError(f"top_p: {self.top_p} has no effect with temperature 0 (greedy); set temperature > 0")
        return self


class Variant(_Strict):
    """One technique variant: an adapter with params, at a precision."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
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


class CostTolerances(_Strict):
    """Allowed cost increase per metric, as a candidate/baseline ratio above 1 (0.10 = +10 %).

    The gate widens each to ``spread_factor`` × the measured coefficient of variation across
    repeats when that is larger (see :class:`Gate`).
    """

    latency_p50_s: float = Field(0.10, ge=0)
    latency_p90_s: float = Field(0.15, ge=0)
    ttft_p50_s: float = Field(0.15, ge=0)
    energy_per_token_j: float = Field(0.10, ge=0)
    peak_rss_bytes: float = Field(0.05, ge=0)
    peak_allocated_bytes: float = Field(0.05, ge=0)


class Gate(_Strict):
    """The CI regression gate's settings (``gate:`` in a suite; ``python -m harness gate``).

    Not part of the suite's run identity: changing them never re-runs cells.

    Attributes:
        alpha: significance level of the paired accuracy test (two-sided exact McNemar for 0/1
            grades, paired bootstrap otherwise); a drop fails only when significant *and* larger
            than ``accuracy_tolerance``.
        accuracy_tolerance: largest accuracy drop tolerated, absolute, as a fraction (0.01 = 1 point).
        length_band: allowed candidate/baseline ratio of mean output tokens (MLPerf's 90-110 %),
            skipped for variants declared ``length_changing``.
        truncation_tolerance: largest tolerated rise of the truncation rate (share of samples
            stopped by the token cap), absolute fraction.
        cost: compare cost metrics at all (they are never compared across hardware or with fewer
            than ``min_repeats`` repeats per side).
        cost_tolerance: per-metric ratio tolerances (:class:`CostTolerances`).
        min_repeats: repeats needed on each side before a cost metric is compared.
        spread_factor: a cost tolerance is at least this × the larger side's coefficient of
            variation across repeats.
        fail_on_missing: a baseline cell absent from the candidate is a failure.
        bootstrap_samples: resamples of the paired bootstrap (non-binary scores only).
    """

    alpha: float = Field(0.05, gt=0, lt=1)
    accuracy_tolerance: float = Field(0.01, ge=0, le=1)
    length_band: tuple[float, float] = (0.90, 1.10)
    truncation_tolerance: float = Field(0.05, ge=0, le=1)
    cost: bool = True
    cost_tolerance: CostTolerances = CostTolerances()
    min_repeats: int = Field(3, ge=2)
    spread_factor: float = Field(2.0, ge=0)
    fail_on_missing: bool = True
    bootstrap_samples: int = Field(2000, ge=100)

    @field_validator("length_band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= 1 <= high:
            raise ValueError(f"length_band must be (low, high) with 0 < low <= 1 <= high, got {list(value)}")
        return value


class TrainOverrides(_Strict):
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


class FinetuneDefaults(_Strict):
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

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
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


class Finetune(_Strict):
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


TAU2_DOMAINS = ("mock", "airline", "retail", "telecom")  # the domains whose data τ² ships


class AgentDefaults(_Strict):
    """τ² run settings of every agent cell.

    Attributes:
        trials: simulations per task (τ²'s ``--num-trials``; pass^k needs ``k`` trials).
        max_steps: τ²'s step limit per simulation (a run hitting it scores 0).
        max_tokens: completion cap per request, for the agent and a local user simulator.
        max_errors: τ²'s limit of consecutive tool errors.
        concurrency: τ²'s ``--max-concurrency``; only 1: τ² sends no task id, so requests are
            attributed to a simulation by its time window, which needs one simulation at a time.
        seed: τ²'s seed; trial ``t`` of a task runs with ``seed + t`` (one simulation per
            subprocess, so requests can be attributed to it by time window).
        repeats: cells per (variant, domain) (timing spread).
        timeout_s: wall-clock limit of one simulation's subprocess (then an infrastructure error).
        data: ``bundled`` = τ²'s own data (matches its code); ``data_dir`` = the ``tau2/`` folder
            under ``HARNESS_DATA_DIR`` (passed to τ² as ``TAU2_DATA_DIR``).
    """

    trials: int = Field(1, ge=1)
    max_steps: int = Field(8, ge=1)
    max_tokens: int = Field(96, ge=1)
    max_errors: int = Field(10, ge=1)
    concurrency: int = Field(1, ge=1, le=1)
    seed: int = 300
    repeats: int = Field(1, ge=1)
    timeout_s: float = Field(1800.0, gt=0)
    data: Literal["bundled", "data_dir"] = "bundled"


class AgentDomain(_Strict):
    """Which tasks of a τ² domain: ``task_ids`` (in order), else the first ``num_tasks`` of the
    ``split`` (all when both are unset)."""

    task_ids: list[str] | None = Field(None, min_length=1)
    num_tasks: int | None = Field(None, ge=1)
    split: str = "base"

    @field_validator("task_ids")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        dupes = sorted({t for t in value or [] if value.count(t) > 1})
        if dupes:
            raise ValueError(f"duplicate task id(s) {dupes} (each would run the same simulation again; use trials)")
        return value


class AgentLLM(_Strict):
    """The user simulator or the judge: a local model the harness serves on the same loopback
    server (``model`` + ``adapter``, labelled ``local:<model>/<adapter>``), or any endpoint
    LiteLLM reaches (``llm``: a LiteLLM model string such as ``openai/gpt-4.1``, with
    ``api_base`` for an OpenAI-compatible server and ``api_key_env`` naming the variable that
    holds its key)."""

    model: str = "embedded"
    adapter: str = "baseline"
    params: dict[str, Any] = Field(default_factory=dict)
    llm: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AgentLLM:
        if self.llm is None:
            given = [k for k in ("api_base", "api_key_env") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} given without llm (the local model would be used); "
                                 "set llm to the endpoint's LiteLLM model string, e.g. openai/<served name>")
            return self
        given = [k for k in ("model", "adapter", "params") if k in self.model_fields_set]
        if given:
            raise ValueError(f"llm {self.llm!r} given together with {', '.join(given)}: use llm (an endpoint) "
                             "or model/adapter (a local model), not both")
        if self.llm.startswith("openai/") and not self.api_base:
            raise ValueError(f"llm {self.llm!r} needs api_base: without it LiteLLM sends openai/ models to "
                             "OPENAI_API_BASE, which the harness pins to its loopback server")
        return self

    @property
    def local(self) -> bool:
        return self.llm is None

    @property
    def remote(self) -> bool:
        """An endpoint off this machine (a provider, or an ``api_base`` that is not loopback)."""
        if self.llm is None:
            return False
        from urllib.parse import urlparse

        host = urlparse(self.api_base).hostname if self.api_base else None
        return host not in {"127.0.0.1", "localhost", "::1"}

    @property
    def label(self) -> str:
        return f"local:{self.model}/{self.adapter}" if self.local else f"{self.llm}@{self.api_base or 'provider'}"


class Agents(_Strict):
    """The ``agents:`` section: τ²-bench cells (model × variant × domain × repeat)."""

    models: list[str] = Field(min_length=1)
    domains: dict[str, AgentDomain] = Field(min_length=1)
    variants: list[Variant] = Field(min_length=1)
    defaults: AgentDefaults = AgentDefaults()
    user: AgentLLM = AgentLLM()
    judge: AgentLLM | None = None

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: dict[str, AgentDomain]) -> dict[str, AgentDomain]:
        for name in value:
            if name not in TAU2_DOMAINS:
                raise ValueError(f"unknown τ² domain {name!r}; choose one of {list(TAU2_DOMAINS)}")
        return value


class Suite(_Strict):
    """A validated suite (see module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    models: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    variants: list[Variant] = Field(default_factory=list)
    defaults: Defaults = Defaults()
    gate: Gate = Gate()
    finetune: Finetune | None = None
    agents: Agents | None = None

    @model_validator(mode="after")
    def _unique_variants(self):
        if self.variants and (not self.models or not self.tasks):
            raise ValueError("evaluation variants need at least one model and one task")
        if not self.variants and self.finetune is None and self.agents is None:
            raise ValueError(
                "a suite needs evaluation variants (models, tasks, variants), a finetune section or an agents section"
            )
        names = [v.name for v in self.variants] + [v.name for v in (self.finetune.variants if self.finetune else [])]
        names += [v.name for v in (self.agents.variants if self.agents else [])]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {dupes}")
        return self

    def canonical(self) -> dict[str, Any]:
        """JSON-ready dump with defaults filled (what the suite hash covers); a suite without a
        ``finetune`` section dumps exactly as before the section existed (same hash), and so does
        a greedy suite without the sampling keys (``samples``, ``temperature``, ``top_p`` are in
        ``defaults`` only when sampling is on)."""
        data = self.model_dump(mode="json")
        for section in ("finetune", "agents"):
            if data.get(section) is None:
                data.pop(section, None)
        if not self.defaults.sampling:
            for key in SAMPLING_KEYS:
                data["defaults"].pop(key)
        return data


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def model_ref_problem(ref: str) -> str | None:
    """Why a model reference cannot work, checked without loading anything (``None`` = fine).

    Catches a misspelt ``embedded`` and GGUF files or local folders that do not exist; any
    other bare name is taken as a hub id.
    """
    import difflib
    from pathlib import Path

    from harness.models import EMBEDDED

    if ref != EMBEDDED and difflib.get_close_matches(ref, [EMBEDDED], n=1, cutoff=0.75):
        return f"unknown model {ref!r}; did you mean {EMBEDDED!r}?"
    if ref.endswith(".gguf") and not Path(ref).expanduser().is_file():
        return f"GGUF file not found: {ref}"
    if ref.startswith((".", "/", "~")) and not Path(ref).expanduser().exists():
        return f"model path not found: {ref}"
    return None


def parse(data: Any, source: str = "<suite>") -> Suite:
    """Validate a suite mapping: fields, adapter names and params, task names, and that every
    variant can run every task (a decode-loop technique cannot run log-likelihood tasks).

    Raises:
        SuiteError: one line naming ``source`` and the offending key.
    """
    from harness.adapters import ADAPTERS
    from harness.registry import UnknownNameError
    from harness.tasks import get_task

    if not isinstance(data, dict):
        raise SuiteError(f"{source}: a suite must be a mapping, got {type(data).__name__}")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch" and err["loc"][-1] == "device":
            message = f"unknown device {err['input']!r}; use auto, cpu, cuda or cuda:N"
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        raise SuiteError(f"{source}: {_loc(err['loc'])}: {message}") from None
    for i, variant in enumerate(suite.variants):
        try:
            adapter = ADAPTERS.get(variant.adapter)
        except UnknownNameError as exc:
            raise SuiteError(f"{source}: variants[{i}].adapter: {exc}") from None
        try:
            adapter.Params(**variant.params)
        except ValidationError as exc:
            err = exc.errors()[0]
            message = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
            raise SuiteError(f"{source}: variants[{i}].params.{_loc(err['loc'])}: {message}") from None
    seen: dict[str, str] = {}
    for i, variant in enumerate(suite.variants):
        params = ADAPTERS.get(variant.adapter).Params(**variant.params).model_dump(mode="json")
        key = stable_json([variant.adapter, params, variant.dtype, variant.batch_size])
        if key in seen:
            raise SuiteError(
                f"{source}: variants[{i}]: same adapter, params, dtype and batch size as variant {seen[key]!r}"
            )
        seen[key] = variant.name
    for i, ref in enumerate(suite.models):
        problem = model_ref_problem(ref)
        if problem:
            raise SuiteError(f"{source}: models[{i}]: {problem}")
    for i, variant in enumerate(suite.variants):
        try:
            ADAPTERS.get(variant.adapter)(variant.params).check(suite.defaults.max_new_tokens)
        except ValueError as exc:
            raise SuiteError(f"{source}: variants[{i}].params: {exc}") from None
    for i, task in enumerate(suite.tasks):
        try:
            get_task(task)
        except KeyError as exc:
            raise SuiteError(f"{source}: tasks[{i}]: {exc.args[0] if exc.args else exc}") from None
    scored = [t for t in suite.tasks if get_task(t).output_type != "generate_until"]
    if scored and suite.defaults.sampling:
        raise SuiteError(
            f"{source}: defaults: samples/temperature/top_p apply to generation tasks only; "
            f"the log-likelihood task(s) {', '.join(scored)} cannot sample; put them in a greedy suite"
        )
    for i, variant in enumerate(suite.variants):
        if scored and not ADAPTERS.get(variant.adapter).supports_loglikelihood:
            raise SuiteError(
                f"{source}: variants[{i}].adapter: {variant.adapter!r} works in the decode loop and has no "
                f"log-likelihood, so it cannot run the log-likelihood task(s) {', '.join(scored)}; "
                "put it in a suite of generation tasks"
            )
    if suite.finetune is not None:
        _check_finetune(suite.finetune, source)
    if suite.agents is not None:
        _check_agents(suite.agents, source)
    return suite


def _check_adapter(name: str, params: dict, where: str):
    """The eval adapter ``name`` with ``params`` (``SuiteError`` naming ``where``)."""
    from harness.adapters import ADAPTERS
    from harness.registry import UnknownNameError

    try:
        cls = ADAPTERS.get(name)
    except UnknownNameError as exc:
        raise SuiteError(f"{where}.adapter: {exc}") from None
    try:
        return cls(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
        raise SuiteError(f"{where}.params.{_loc(err['loc'])}: {message}") from None


def _check_agents(section: Agents, source: str) -> None:
    """Validate the ``agents:`` section's models, adapters and the user simulator / judge."""
    where = f"{source}: agents"
    for i, ref in enumerate(section.models):
        problem = model_ref_problem(ref)
        if problem:
            raise SuiteError(f"{where}.models[{i}]: {problem}")
    seen: dict[str, str] = {}
    for i, variant in enumerate(section.variants):
        adapter = _check_adapter(variant.adapter, variant.params, f"{where}.variants[{i}]")
        try:
            adapter.check(section.defaults.max_tokens)
        except ValueError as exc:
            raise SuiteError(f"{where}.variants[{i}].params: {exc}") from None
        key = stable_json([variant.adapter, adapter.params.model_dump(mode="json"), variant.dtype])
        if key in seen:
            raise SuiteError(f"{where}.variants[{i}]: same adapter, params and dtype as variant {seen[key]!r}")
        seen[key] = variant.name
    for role in ("user", "judge"):
        llm = getattr(section, role)
        if llm is None:
            continue
        if llm.local:
            problem = model_ref_problem(llm.model)
            if problem:
                raise SuiteError(f"{where}.{role}.model: {problem}")
            _check_adapter(llm.adapter, llm.params, f"{where}.{role}")
        elif llm.api_base is not None and not llm.api_base.startswith(("http://", "https://")):
            raise SuiteError(f"{where}.{role}.api_base: not an http(s) URL: {llm.api_base!r}")
    _check_agent_tasks(section, where)


def _check_agent_tasks(section: Agents, where: str) -> None:
    """Each domain's task selection against its task and split files (read, τ² not imported):
    unknown task ids or split, ``num_tasks`` above what the split holds. Skipped where the data
    cannot be reached yet (τ² not installed, no ``HARNESS_DATA_DIR``): the run checks it then."""
    from harness.agents.cell import resolve_task_ids
    from harness.agents.tau2_run import Tau2Unavailable

    try:
        data_dir = tau2_data_dir(section)
    except SuiteError:
        return
    for domain, spec in section.domains.items():
        try:
            ids = resolve_task_ids({"domain": domain, "data_dir": data_dir, **spec.model_dump(mode="json")})
        except (Tau2Unavailable, FileNotFoundError):
            continue
        except (OSError, ValueError) as exc:
            raise SuiteError(f"{where}.domains.{domain}: {exc}") from None
        if not ids:
            raise SuiteError(f"{where}.domains.{domain}: no tasks selected")


def _check_finetune(section: Finetune, source: str) -> None:
    """Validate the ``finetune:`` section's names, params and tasks (nothing loads)."""
    from harness.finetune import FINETUNE_ADAPTERS
    from harness.finetune.data import get_finetune_task
    from harness.finetune.encoder import encoder_ref_problem
    from harness.registry import UnknownNameError

    where = f"{source}: finetune"
    for i, ref in enumerate(section.models):
        problem = encoder_ref_problem(ref)
        if problem:
            raise SuiteError(f"{where}.models[{i}]: {problem}")
    for i, task in enumerate([*section.tasks, *section.per_task]):
        try:
            get_finetune_task(task)
        except KeyError as exc:
            key = f"tasks[{i}]" if i < len(section.tasks) else f"per_task.{task}"
            raise SuiteError(f"{where}.{key}: {exc.args[0]}") from None
    seen: dict[str, str] = {}
    for i, variant in enumerate(section.variants):
        try:
            cls = FINETUNE_ADAPTERS.get(variant.adapter)
        except UnknownNameError as exc:
            raise SuiteError(f"{where}.variants[{i}].adapter: {exc}") from None
        try:
            adapter = cls(variant.params)
        except ValidationError as exc:
            err = exc.errors()[0]
            message = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
            raise SuiteError(f"{where}.variants[{i}].params.{_loc(err['loc'])}: {message}") from None
        for task in section.tasks:
            try:
                adapter.check(task)
                for other in adapter.tasks(task):
                    get_finetune_task(other)
            except (ValueError, KeyError) as exc:
                raise SuiteError(f"{where}.variants[{i}].params: {exc.args[0] if exc.args else exc}") from None
        key = stable_json([variant.adapter, adapter.params.model_dump(mode="json"),
                           variant.model_dump(exclude={"name", "adapter", "params"})])
        if key in seen:
            raise SuiteError(f"{where}.variants[{i}]: same adapter, params and settings as variant {seen[key]!r}")
        seen[key] = variant.name


def load(path: str | Path) -> Suite:
    """Read and validate a suite YAML file.

    Raises:
        SuiteError: missing file, YAML syntax error, or invalid content (names file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: suite file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse(data, str(path))


def resolve_path(name_or_path: str, suites_dir: Path | None = None) -> Path:
    """``reasoning`` → ``suites/reasoning.yaml``; an existing path is returned unchanged."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    return (suites_dir or Path("suites")) / f"{name_or_path}.yaml"


def stable_json(obj: Any) -> str:
    """Canonical JSON of ``obj`` (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(obj: Any, n: int = 16) -> str:
    """sha256 prefix of :func:`stable_json` of ``obj``."""
    return hashlib.sha256(stable_json(obj).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class Cell:
    """One unit of work: a variant of a model on a task (one repeat).

    ``cell_hash`` covers the canonical model id, dtype, adapter and its full params
    (defaults filled), task and version, limit, generation settings, batch size, seed,
    repeat and the cell format — never a path. Generation settings are
    ``{max_new_tokens, do_sample: False}`` for a greedy cell (as before sampling existed) and
    gain ``do_sample: True, temperature, top_p, samples`` for a sampling cell (``samples > 1``,
    ``temperature > 0`` or ``top_p < 1``). ``kind`` names the cell runner
    (:data:`harness.cells.CELL_RUNNERS`): ``eval`` cells evaluate a variant; ``finetune``
    cells train one, with their resolved training settings in ``train`` (hashed too).
    """

    suite: str
    model_ref: str
    model_id: str
    variant: Variant | FinetuneVariant
    params: dict[str, Any]
    task: str
    task_version: str
    limit: int | None
    batch_size: int
    max_new_tokens: int
    seed: int
    repeat: int
    device: str
    warmup: int = 0  # not part of the identity: warm-up is excluded from every figure
    kind: str = "eval"
    train: dict[str, Any] | None = None
    agent: dict[str, Any] | None = None  # agent cells: the resolved τ² settings (hashed)
    samples: int = 1  # eval cells: responses per doc (lm-eval repeats)
    temperature: float = 0.0  # eval cells: 0 = greedy
    top_p: float = 1.0  # eval cells: nucleus mass, 1 = off

    @property
    def sampling(self) -> bool:
        """Sampling is on: several samples, a temperature or a nucleus cut."""
        return self.samples > 1 or self.temperature > 0 or self.top_p < 1

    @property
    def generation(self) -> dict[str, Any]:
        """The generation settings in the cell's identity (see the class docstring)."""
        if not self.sampling:
            return {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        return {"max_new_tokens": self.max_new_tokens, "do_sample": True, "temperature": self.temperature,
                "top_p": self.top_p, "samples": self.samples}

    @property
    def identity(self) -> dict[str, Any]:
        if self.kind != "eval":
            return {
                "format": CELL_FORMAT,
                "kind": self.kind,
                "model": self.model_id,
                "dtype": self.variant.dtype,
                "adapter": self.variant.adapter,
                "params": self.params,
                "task": self.task,
                "task_version": self.task_version,
                "limit": self.limit,
                "train": self.train,
                "seed": self.seed,
                "repeat": self.repeat,
                # an agent cell's τ² settings; the subprocess timeout is not part of what it measures
                **({"agent": {k: v for k, v in self.agent.items() if k != "timeout_s"}} if self.agent is not None else {}),
            }
        return {
            "format": CELL_FORMAT,
            "model": self.model_id,
            "dtype": self.variant.dtype,
            "adapter": self.variant.adapter,
            "params": self.params,
            "task": self.task,
            "task_version": self.task_version,
            "limit": self.limit,
            "generation": self.generation,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "repeat": self.repeat,
        }

    @property
    def cell_hash(self) -> str:
        return stable_hash(self.identity)

    @property
    def params_hash(self) -> str:
        return stable_hash({"adapter": self.variant.adapter, "params": self.params})


def expand(suite: Suite, limit: int | None = None, model_ids: dict[str, str] | None = None) -> list[Cell]:
    """All cells of a suite, in run order (model, dtype, variant, task, repeat).

    Args:
        suite: a validated suite.
        limit: overrides ``defaults.limit`` when given.
        model_ids: reference → canonical id (default: :func:`harness.models.resolve`).
    """
    from harness.adapters import ADAPTERS
    from harness.models import resolve
    from harness.tasks import get_task

    ids = dict(model_ids or {})
    cells = []
    d = suite.defaults
    variants = sorted(suite.variants, key=lambda v: v.dtype != "fp32")
    for ref, variant, params in _grid(suite.models, variants, ids, lambda r: resolve(r).canonical_id, ADAPTERS):
        for task in suite.tasks:
            for repeat in range(d.repeats):
                cells.append(
                    Cell(
                        suite=suite.name,
                        model_ref=ref,
                        model_id=ids[ref],
                        variant=variant,
                        params=params,
                        task=task,
                        task_version=get_task(task).version,
                        limit=limit if limit is not None else d.limit,
                        batch_size=variant.batch_size or d.batch_size,
                        max_new_tokens=d.max_new_tokens,
                        seed=d.seed,
                        repeat=repeat,
                        device=d.device,
                        warmup=d.warmup,
                        samples=d.samples,
                        temperature=d.temperature,
                        top_p=d.top_p,
                    )
                )
    if suite.finetune is not None:
        cells += _expand_finetune(suite, limit, ids)
    if suite.agents is not None:
        cells += _expand_agents(suite, ids)
    return cells


def _grid(models, variants, ids: dict[str, str], resolve_id, registry):
    """``(model ref, variant, validated params)`` over models × variants, in that order; each
    model's canonical id is resolved once into ``ids`` (shared by every kind of cell)."""
    for ref in models:
        if ref not in ids:
            ids[ref] = resolve_id(ref)
        for variant in variants:
            yield ref, variant, registry.get(variant.adapter).Params(**variant.params).model_dump(mode="json")


def tau2_data_dir(section: Agents) -> str | None:
    """``TAU2_DATA_DIR`` of the section's cells: ``None`` = τ²'s bundled data; ``data: data_dir``
    = ``$HARNESS_DATA_DIR`` (which must hold a ``tau2/`` folder).

    Raises:
        SuiteError: ``data: data_dir`` without a usable ``HARNESS_DATA_DIR``.
    """
    import os

    if section.defaults.data == "bundled":
        return None
    root = os.environ.get("HARNESS_DATA_DIR")
    if not root or not (Path(root) / "tau2" / "domains").is_dir():
        raise SuiteError(f"agents.defaults.data: data_dir needs HARNESS_DATA_DIR with a tau2/domains folder (got {root!r})")
    return str(Path(root).resolve())


def _expand_agents(suite: Suite, ids: dict[str, str]) -> list[Cell]:
    """Agent cells: model × variant × τ² domain × repeat (task ``tau2/<domain>``); ``agent``
    holds the τ² settings, the user simulator and judge, and the data version."""
    from harness.adapters import ADAPTERS
    from harness.agents.tau2_run import data_version
    from harness.models import resolve

    section = suite.agents
    d = section.defaults
    data_dir = tau2_data_dir(section)
    cells = []
    for ref, variant, params in _grid(section.models, section.variants, ids, lambda r: resolve(r).canonical_id, ADAPTERS):
        for domain, spec in section.domains.items():
            try:
                version = data_version(domain, data_dir)
            except (RuntimeError, OSError) as exc:  # τ² missing: check_inputs says so before anything loads
                version = f"unavailable ({type(exc).__name__})"
            agent = {
                "domain": domain,
                **spec.model_dump(mode="json"),
                **d.model_dump(mode="json", exclude={"repeats", "seed", "timeout_s"}),
                "data_dir": data_dir,
                "user": section.user.model_dump(mode="json"),
                "judge": section.judge.model_dump(mode="json") if section.judge else None,
            }
            for repeat in range(d.repeats):
                cells.append(
                    Cell(
                        suite=suite.name,
                        model_ref=ref,
                        model_id=ids[ref],
                        variant=variant,
                        params=params,
                        task=f"tau2/{domain}",
                        task_version=version,
                        limit=None,
                        batch_size=1,
                        max_new_tokens=d.max_tokens,
                        seed=d.seed,
                        repeat=repeat,
                        device=suite.defaults.device,
                        kind="agent",
                        agent={**agent, "timeout_s": d.timeout_s},
                    )
                )
    return cells


def _expand_finetune(suite: Suite, limit: int | None, ids: dict[str, str]) -> list[Cell]:
    """Training cells: encoder × variant × task × seed × repeat (``limit`` caps validation docs)."""
    from harness.finetune import FINETUNE_ADAPTERS
    from harness.finetune.data import get_finetune_task
    from harness.finetune.encoder import resolve_encoder

    section = suite.finetune
    cells = []
    for ref, variant, params in _grid(section.models, section.variants, ids,
                                      lambda r: resolve_encoder(r).canonical_id, FINETUNE_ADAPTERS):
        for task in section.tasks:
            train = section.settings(variant, task)
            eval_limit = train.pop("eval_limit")
            for seed in section.defaults.seeds:
                for repeat in range(section.defaults.repeats):
                    cells.append(
                        Cell(
                            suite=suite.name,
                            model_ref=ref,
                            model_id=ids[ref],
                            variant=variant,
                            params=params,
                            task=task,
                            task_version=get_finetune_task(task).version,
                            limit=limit if limit is not None else eval_limit,
                            batch_size=train["batch_size"],
                            max_new_tokens=0,
                            seed=seed,
                            repeat=repeat,
                            device=suite.defaults.device,
                            kind="finetune",
                            train=train,
                        )
                    )
    return cells


def suite_hash(suite: Suite, limit: int | None = None) -> str:
    """Identity of a suite run: its canonical content plus the limit override.

    The ``gate`` section is left out: gate settings never change what a run measures.
    """
    content = {k: v for k, v in suite.canonical().items() if k != "gate"}
    if limit == suite.defaults.limit:  # the same effective limit is the same run
        limit = None
    return stable_hash({"suite": content, "limit": limit, "format": CELL_FORMAT})
