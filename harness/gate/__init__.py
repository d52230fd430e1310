"""The CI regression gate: does a candidate run regress against a baseline run? (DESIGN.md §7)

``python -m harness gate BASELINE CANDIDATE`` — each side a run directory read through
:mod:`harness.results` (the reader the summary and the dashboard use). Exit 0 pass, 1 regression,
2 unusable input (missing run, schema mismatch, no overlapping cells), with a one-line reason.

The discipline is MLPerf Inference's (Reddi et al., arXiv 1911.02549): an optimisation counts
only if accuracy holds against the reference and, for LLMs, the output length stays within
90-110 % of the reference's, so a "faster" variant cannot win by stopping early. Here accuracy
is judged by a paired test on the same samples — the exact McNemar test (McNemar, 1947) on the
discordant pairs — failing a drop that is significant *and* beyond a tolerance; costs by ratio
with a tolerance that respects the measured run-to-run spread, and only between repeats measured
on the same hardware.

Modules: :mod:`~harness.gate.matching` (load and match cells and samples),
:mod:`~harness.gate.stats` (the tests), :mod:`~harness.gate.checks` (the checks per cell),
:mod:`~harness.gate.report` (markdown and JSON), :mod:`~harness.gate.baseline`
(``make baseline``). Settings: :class:`harness.config.gate.Gate` (a suite's ``gate:`` section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.gate.checks import FAIL, Check, cell_checks, missing_cell_check
from harness.gate.matching import GateInputError, Side, load_side, match
from harness.config.errors import validation_error
from harness.config.gate import Gate
from harness.config.suite import Suite

__all__ = ["GateInputError", "GateResult", "Gate", "run_gate", "resolve_settings"]


@dataclass
class GateResult:
    """Everything the gate found; ``exit_code`` 0 (pass) or 1 (regression)."""

    verdict: str  # "pass" | "fail"
    exit_code: int
    settings: Gate
    settings_source: str
    baseline: Side
    candidate: Side
    checks: list[Check]
    only_baseline: list[tuple]
    only_candidate: list[tuple]
    n_matched: int
    fronts: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        from harness.gate.report import to_markdown

        return to_markdown(self)

    def json(self) -> str:
        from harness.gate.report import to_json

        return to_json(self)


def _from_suite_config(cfg: dict[str, Any], source: str) -> tuple[Gate, set[str]]:
    """Gate settings and length-changing variant names from a suite mapping (lenient on the rest)."""
    try:
        gate = Gate.model_validate(cfg.get("gate") or {})
    except ValidationError as exc:
        raise GateInputError(str(validation_error(exc, Gate, source, prefix="gate."))) from None
    variants = cfg.get("variants") or []
    changing = {str(v.get("name")) for v in variants if isinstance(v, dict) and v.get("length_changing")}
    return gate, changing


def resolve_settings(
    suite: Path | str | None,
    baseline: Side,
    candidate: Side,
    overrides: dict[str, Any] | None = None,
) -> tuple[Gate, set[str], str]:
    """The gate settings, the length-changing variants and where they came from.

    Source order: ``suite`` (a suite YAML file), else the ``suite_config`` stored in the
    candidate's ``run.json``, else the baseline's, else the defaults. ``overrides`` (CLI flags;
    keys of :class:`~harness.config.gate.Gate`) win over all of them.

    Raises:
        GateInputError: unreadable or invalid suite file, invalid ``gate:`` section or override.
    """
    if suite is not None:
        path = Path(suite)
        if not path.is_file():
            raise GateInputError(f"suite file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise GateInputError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise GateInputError(f"{path}: a suite must be a mapping")
        try:
            parsed = Suite.model_validate(data)
        except ValidationError as exc:
            raise GateInputError(str(validation_error(exc, Suite, str(path)))) from None
        gate, changing = parsed.gate, {v.name for v in parsed.variants if v.length_changing}
        source = str(path)
    else:
        for side in (candidate, baseline):
            cfg = side.suite_config()
            if cfg is not None:
                gate, changing = _from_suite_config(cfg, f"{side.label} run.json suite_config")
                source = f"{side.label} run.json (suite {cfg.get('name', '?')!r})"
                break
        else:
            gate, changing, source = Gate(), set(), "defaults (no suite config found)"
    if overrides:
        merged = {**gate.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            gate = Gate.model_validate(merged)
        except ValidationError as exc:
            raise GateInputError(str(validation_error(exc, Gate, "command-line override"))) from None
        source += " + command-line overrides"
    return gate, changing, source


def run_gate(
    baseline: Path | str,
    candidate: Path | str,
    suite: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
) -> GateResult:
    """Compare ``candidate`` against ``baseline`` (run directories) and return the result.

    Args:
        baseline: run directory (or results root / folder of runs) of the reference.
        candidate: run directory (or results root / folder of runs) under test.
        suite: suite YAML for the ``gate:`` settings and ``length_changing`` variants; default:
            the suite config stored in the runs' ``run.json``.
        overrides: :class:`~harness.config.gate.Gate` fields to override (None values ignored).

    Raises:
        GateInputError: unusable input (exit code 2).
    """
    from harness.gate.report import pareto_fronts

    base = load_side(baseline, "baseline")
    cand = load_side(candidate, "candidate")
    settings, changing, source = resolve_settings(suite, base, cand, overrides)
    matching = match(base, cand)
    checks: list[Check] = []
    notes = base.notes + cand.notes
    for pair in matching.pairs:
        checks += cell_checks(pair, settings, length_changing=str(pair.info["variant"]) in changing)
        notes += [f"{pair.info['task']} · {pair.info['variant']}: {n}" for n in pair.notes]
    checks += [missing_cell_check(k, settings) for k in matching.only_baseline]
    failed = any(c.status == FAIL for c in checks)
    try:
        fronts = pareto_fronts(base, cand)
    except Exception as exc:  # noqa: BLE001 - the fronts are informative, never a verdict
        fronts, notes = None, notes + [f"Pareto fronts not computed: {exc}"]
    return GateResult(
        verdict="fail" if failed else "pass",
        exit_code=1 if failed else 0,
        settings=settings,
        settings_source=source,
        baseline=base,
        candidate=cand,
        checks=checks,
        only_baseline=matching.only_baseline,
        only_candidate=matching.only_candidate,
        n_matched=len(matching.pairs),
        fronts=fronts,
        notes=notes,
    )
