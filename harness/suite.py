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

Every error names the file and the key, e.g.
``suites/x.yaml: variants[1].adapter: unknown adapter 'baslein'; did you mean 'baseline'?``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.models import DTYPES

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
CELL_FORMAT = 1  # bump when the meaning of a cell changes (invalidates resume)


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
        seed: random seed (recorded; decoding is greedy).
        repeats: how many times each cell is run (timing spread).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
    """

    limit: int | None = Field(None, ge=1)
    batch_size: int = Field(1, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0
    repeats: int = Field(1, ge=1)
    device: str = Field("auto", pattern=DEVICE_PATTERN)


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


class Suite(_Strict):
    """A validated suite (see module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    models: list[str] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    variants: list[Variant] = Field(min_length=1)
    defaults: Defaults = Defaults()
    gate: Gate = Gate()

    @model_validator(mode="after")
    def _unique_variants(self):
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {dupes}")
        return self

    def canonical(self) -> dict[str, Any]:
        """JSON-ready dump with defaults filled (what the suite hash covers)."""
        return self.model_dump(mode="json")


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
    for i, variant in enumerate(suite.variants):
        if scored and not ADAPTERS.get(variant.adapter).supports_loglikelihood:
            raise SuiteError(
                f"{source}: variants[{i}].adapter: {variant.adapter!r} works in the decode loop and has no "
                f"log-likelihood, so it cannot run the log-likelihood task(s) {', '.join(scored)}; "
                "put it in a suite of generation tasks"
            )
    return suite


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
    repeat and the cell format — never a path.
    """

    suite: str
    model_ref: str
    model_id: str
    variant: Variant
    params: dict[str, Any]
    task: str
    task_version: str
    limit: int | None
    batch_size: int
    max_new_tokens: int
    seed: int
    repeat: int
    device: str

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "format": CELL_FORMAT,
            "model": self.model_id,
            "dtype": self.variant.dtype,
            "adapter": self.variant.adapter,
            "params": self.params,
            "task": self.task,
            "task_version": self.task_version,
            "limit": self.limit,
            "generation": {"max_new_tokens": self.max_new_tokens, "do_sample": False},
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
    for ref in suite.models:
        if ref not in ids:
            ids[ref] = resolve(ref).canonical_id
        for variant in sorted(suite.variants, key=lambda v: v.dtype != "fp32"):
            params = ADAPTERS.get(variant.adapter).Params(**variant.params).model_dump(mode="json")
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
