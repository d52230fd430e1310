"""The ``prove`` cell kind: sampled proof attempts at formal problems, checked by a real proof
checker (the suite's ``prove:`` section, :mod:`.section`); one cell = model × variant × proving
task × repeat, one sample row per (problem, attempt).

Running: :mod:`.runner`; figures: :mod:`.metrics` (pass@k, proved, tokens per proved problem);
the CoT strategy: :mod:`.strategy`; checkers: :mod:`.checkers` over :mod:`harness.provers`;
tasks: :mod:`harness.tasks.minif2f`.
"""

from __future__ import annotations

from harness.config.errors import SuiteError
from harness.core import refs
from harness.core.cell import KINDS, Cell, CellKind
from harness.core.registry import UnknownNameError
from harness.kinds.checks import (
    adapter_instance,
    check_models,
    check_unique,
    model_grid,
)
from harness.kinds.prove.section import Prove


@KINDS.register("prove")
class ProveKind(CellKind):
    """Proving cells (``kind = "prove"``, section ``prove:``)."""

    section = "prove"
    order = 5
    Section = Prove

    def describe(self, suite, p: Prove) -> str:
        d = p.defaults
        modes = sorted({v.cot_switch.mode for v in p.variants})
        return (f"prove: {len(p.models)} model(s) × {len(p.variants)} variant(s) × {len(p.tasks)} task(s) × "
                f"{d.repeats} repeat(s); {d.limit or 'all'} problem(s) × {d.samples} attempt(s), "
                f"T={d.temperature:g}, top_p={d.top_p:g}, max_new_tokens {d.max_new_tokens}, "
                f"pass@k for k in {d.reported_k}; cot_switch: {', '.join(modes)}")

    def check(self, suite, section: Prove, source: str) -> None:
        """Models, adapters and params (no variant that needs a task calibration), duplicate
        variants, the cascade's ``k1`` against ``samples``, task names, and a Lean back-end for
        Lean tasks (nothing loads, no checker runs)."""
        from harness.tasks.proving import get_proving_task

        where = "prove"
        d = section.defaults
        check_models(section.models, source, f"{where}.models")
        keys = []
        for i, variant in enumerate(section.variants):
            adapter = adapter_instance(variant.adapter, variant.params, source, f"{where}.variants[{i}]")
            try:
                adapter.check(d.max_new_tokens)
            except ValueError as exc:
                raise SuiteError(f"{source}: {where}.variants[{i}].params: {exc}") from None
            reason = adapter.needs_preparation()
            if reason:
                raise SuiteError(f"{source}: {where}.variants[{i}].params: {reason}; proving cells do not calibrate "
                                 "(use max_reasoning_tokens, mode high or no_thinking)")
            switch = variant.cot_switch
            if switch.mode == "switch" and not switch.k1 < d.samples:
                raise SuiteError(f"{source}: {where}.variants[{i}].cot_switch.k1: {switch.k1} leaves no CoT attempt "
                                 f"within the budget of samples: {d.samples} (need k1 < samples)")
            keys.append((variant.name, [variant.adapter, adapter.params.model_dump(mode="json"), variant.dtype,
                                        variant.batch_size, switch.model_dump(mode="json")]))
        check_unique(keys, source, f"{where}.variants", "adapter, params, dtype, batch size and cot_switch")
        for i, name in enumerate(section.tasks):
            try:
                task = get_proving_task(name)
            except UnknownNameError as exc:
                raise SuiteError(f"{source}: {where}.tasks[{i}]: {exc}") from None
            if task.checker == "lean" and not (section.checker.lean_repl or section.checker.lean_url):
                raise SuiteError(f"{source}: {where}.checker: task {name!r} needs a Lean checker: set lean_repl "
                                 "(a Lean + Mathlib project folder) or lean_url (a Kimina Lean Server)")

    def expand(self, suite, section: Prove, limit: int | None, model_ids: dict[str, str]) -> list[Cell]:
        """Cells: model, variant, task, repeat. Identity: the kind, generation settings, batch
        size, ``cot_switch``, ``report_k`` and the checker's identity (database hash and axiom
        allow-list; Lean version and ``allow_native_decide``); timeouts are left out."""
        from harness.adapters import ADAPTERS
        from harness.kinds.prove.checkers import identity
        from harness.tasks.proving import get_proving_task

        d = section.defaults
        checker = section.checker.model_dump(mode="json")
        cells = []
        for ref, variant, params in model_grid(section.models, section.variants, model_ids,
                                               lambda r: refs.resolve(r).canonical_id, ADAPTERS):
            batch_size = variant.batch_size or d.batch_size
            for name in section.tasks:
                task = get_proving_task(name)
                settings = {"samples": d.samples, "temperature": d.temperature, "top_p": d.top_p,
                            "report_k": d.reported_k, "cot_switch": variant.cot_switch.model_dump(mode="json"),
                            "checker": checker}
                prove = {"generation": {"max_new_tokens": d.max_new_tokens, "samples": d.samples,
                                        "temperature": d.temperature, "top_p": d.top_p},
                         "batch_size": batch_size, "cot_switch": settings["cot_switch"], "report_k": d.reported_k,
                         "checker": identity(task, checker)}
                for repeat in range(d.repeats):
                    cells.append(Cell(
                        suite=suite.name, model_ref=ref, model_id=model_ids[ref], variant=variant, params=params,
                        task=name, task_version=task.version, limit=limit if limit is not None else d.limit,
                        batch_size=batch_size, max_new_tokens=d.max_new_tokens, seed=d.seed, repeat=repeat,
                        device=suite.defaults.device, warmup=d.warmup, kind="prove", settings=settings,
                        identity_extra={"kind": "prove", "prove": prove},
                    ))
        return cells

    def check_inputs(self, cells: list[Cell]) -> None:
        """Every task's data loads and its checker is usable here (``metamath`` installed with
        the pinned set.mm; the Lean set-up answering with the data's Lean version): a one-line
        ``SuiteError`` naming the install command otherwise, before any model loads."""
        from harness.kinds.prove.checkers import CheckerSetupError, build
        from harness.tasks.proving import get_proving_task

        seen = set()
        for cell in cells:
            key = (cell.task, json_key(cell.settings["checker"]))
            if key in seen:
                continue
            seen.add(key)
            task = get_proving_task(cell.task)
            docs = task.load_docs()
            try:
                built = build(task, cell.settings["checker"], docs)
            except CheckerSetupError as exc:
                raise SuiteError(str(exc)) from None
            close = getattr(getattr(built.checker, "backend", None), "close", None)
            if close:
                close()

    def data_files(self, cells: list[Cell]) -> list[str]:
        """Each proving task's JSONL file (workers elsewhere get it from the driver; the checker
        itself, metamath and set.mm, must be installed where the cells run)."""
        from harness.tasks.proving import get_proving_task

        return sorted({get_proving_task(c.task).data_relpath for c in cells})

    def load_base(self, ref: str, dtype: str, device: str):
        from harness import models

        return models.load(ref, dtype=dtype, device=device)

    def run(self, cell, base, telemetry, on_progress=None, files=None):
        from harness.kinds.prove.runner import run_prove_cell

        return run_prove_cell(cell, base, telemetry, on_progress, files)

    def regrade(self, row):
        """Not per row: re-checking a proof starts a checker (a second per batch); use
        ``harness grade <task> -p <proof> -r <problem>`` for one attempt."""
        raise NotImplementedError("proving attempts are re-checked with harness grade, one at a time")


def json_key(value) -> str:
    from harness.core.hashing import stable_json

    return stable_json(value)
