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

The top level holds the suite's name, the evaluation cells' ``models``/``tasks``/``variants``,
the shared ``defaults`` and the ``gate``; every other key is the section of a cell kind
(:data:`harness.kinds.KINDS`), validated by that kind's ``Section`` model and checks. Every
error names the file and the key, with the closest valid names, e.g.
``suites/x.yaml: variants[1].adapter: unknown adapter 'baslein'; did you mean 'baseline'?``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PrivateAttr, ValidationError

from harness.config.errors import SuiteError, did_you_mean, validation_error
from harness.config.fields import NAME_PATTERN, SAMPLING_KEYS, Defaults, ExecutorSettings, Resources, Strict, Variant
from harness.config.gate import Gate
from harness.core.cell import CELL_FORMAT, KINDS, Cell
from harness.core.hashing import stable_hash
from harness.core.registry import discover

__all__ = ["Cell", "Defaults", "Gate", "Suite", "SuiteError", "Variant", "describe", "expand", "load", "parse", "resolve_path",
           "suite_hash"]


RUN_SETTINGS = ("gate", "executor", "resources")
"""Top-level sections outside a run's identity."""


def _kinds():
    """The registered cell kinds (the built-in ones discovered on first use)."""
    discover("harness.kinds")
    return [KINDS.get(name) for name in KINDS.names()]


class Suite(Strict):
    """A validated suite (see module docstring). Kind sections: :meth:`section`."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    models: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    variants: list[Variant] = Field(default_factory=list)
    defaults: Defaults = Defaults()
    gate: Gate = Gate()
    executor: ExecutorSettings = ExecutorSettings()
    resources: Resources = Resources()
    _sections: dict[str, Any] = PrivateAttr(default_factory=dict)

    def section(self, key: str):
        """The validated section ``key`` (e.g. ``"finetune"``), or ``None`` when absent."""
        return self._sections.get(key)

    @property
    def sections(self) -> dict[str, Any]:
        """Every kind section present, by key."""
        return dict(self._sections)

    def canonical(self) -> dict[str, Any]:
        """JSON-ready dump with defaults filled (what the suite hash covers); absent sections
        are left out, so adding a kind never changes an existing suite's hash, and so are the
        sampling keys of a greedy suite (``samples``, ``temperature``, ``top_p``) and a variant's
        unset ``compile``."""
        data = self.model_dump(mode="json")
        if not self.defaults.sampling:  # greedy suites hash as before sampling existed
            for key in SAMPLING_KEYS:
                data["defaults"].pop(key)
        for key, section in sorted(self._sections.items()):
            data[key] = section.model_dump(mode="json")
        for part in [data, *(data[key] for key in self._sections)]:  # as before the compile setting existed
            for variant in part.get("variants") or []:
                if isinstance(variant, dict) and variant.get("compile", False) is None:
                    variant.pop("compile")
        return data


def parse(data: Any, source: str = "<suite>") -> Suite:
    """Validate a suite mapping: the top level, each kind's section, and each kind's checks
    (names, params, tasks; nothing loads).

    Raises:
        SuiteError: one line naming ``source`` and the offending key.
    """
    if not isinstance(data, dict):
        raise SuiteError(f"{source}: a suite must be a mapping, got {type(data).__name__}")
    kinds = _kinds()
    by_section = {k.section: k for k in kinds if k.section is not None}
    top = {k: v for k, v in data.items() if k not in by_section}
    unknown = [k for k in top if k not in Suite.model_fields]
    if unknown:
        known = [*Suite.model_fields, *by_section]
        raise SuiteError(f"{source}: {unknown[0]}: unknown field{did_you_mean(unknown[0], known)}")
    try:
        suite = Suite.model_validate(top)
    except ValidationError as exc:
        raise validation_error(exc, Suite, source) from None
    sections = {}
    for key, kind in by_section.items():
        if key in data and data[key] is not None:
            try:
                sections[key] = kind.Section.model_validate(data[key])
            except ValidationError as exc:
                raise validation_error(exc, kind.Section, source, f"{key}.") from None
    suite._sections.update(sections)
    if suite.variants and (not suite.models or not suite.tasks):
        raise SuiteError(f"{source}: (top level): evaluation variants need at least one model and one task")
    present = [k for k in kinds if (k.section is None and suite.variants) or k.section in sections]
    if not present:
        options = ["evaluation variants (models, tasks, variants)", *(f"{s} section" for s in sorted(by_section))]
        raise SuiteError(f"{source}: (top level): a suite needs {', '.join(options[:-1])} or {options[-1]}")
    names = [v.name for k in present for v in k().variants(suite if k.section is None else sections[k.section])]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SuiteError(f"{source}: (top level): variant names must be unique; repeated: {dupes}")
    for kind in present:
        kind().check(suite, suite if kind.section is None else sections[kind.section], source)
    return suite


def describe(suite: Suite) -> str:
    """What a suite runs, kind by kind, in one line (``harness validate``)."""
    parts = []
    for kind in sorted(_kinds(), key=_kind_order):
        section = suite if kind.section is None else suite.section(kind.section)
        if section is not None and (kind.section is not None or suite.variants):
            parts.append(kind().describe(suite, section))
    return "; ".join(parts)


def load(path: str | Path) -> Suite:
    """Read and validate a suite YAML file.

    Raises:
        SuiteError: missing file, YAML syntax error (with PyYAML's line and column), or invalid
            content (names file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: suite file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse(data, str(path))


def resolve_path(name_or_path: str, suites_dir: Path | None = None) -> Path:
    """``reasoning`` → ``suites/reasoning.yaml``; an existing path is returned unchanged, and a
    path without its ``.yaml`` (``suites/reasoning``, ``my/suite``) gains it."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    if len(path.parts) > 1:
        return path.with_name(path.name + ".yaml")
    return (suites_dir or Path("suites")) / f"{name_or_path}.yaml"


def expand(suite: Suite, limit: int | None = None, model_ids: dict[str, str] | None = None) -> list[Cell]:
    """All cells of a suite, in run order: kind by kind (``CellKind.order``: evaluation,
    fine-tuning, agents), each kind ordering its own.

    Args:
        suite: a validated suite.
        limit: overrides the suite's limit (samples per task) when given.
        model_ids: reference → canonical id (default: resolved, which hashes GGUF files).
    """
    ids = dict(model_ids or {})
    cells: list[Cell] = []
    for kind in sorted(_kinds(), key=_kind_order):
        section = suite if kind.section is None else suite.section(kind.section)
        if section is None or (kind.section is None and not suite.variants):
            continue
        cells += kind().expand(suite, section, limit, ids)
    return cells


def _kind_order(kind) -> tuple[int, str]:
    return (kind.order, kind.name)


def suite_hash(suite: Suite, limit: int | None = None) -> str:
    """Identity of a suite run: its canonical content plus the limit override.

    The ``gate``, ``executor`` and ``resources`` sections are left out: they never change what
    a run measures (switching executors resumes the same run).
    """
    content = {k: v for k, v in suite.canonical().items() if k not in RUN_SETTINGS}
    if limit == suite.defaults.limit:  # the same effective limit is the same run
        limit = None
    return stable_hash({"suite": content, "limit": limit, "format": CELL_FORMAT})
