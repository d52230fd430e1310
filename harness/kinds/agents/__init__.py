"""The ``agent`` cell kind: τ²-bench against a variant served on loopback (the suite's
``agents:`` section, :mod:`.section`); one cell = model × variant × τ² domain × repeat.
Running: :mod:`.runner`; the τ² glue (subprocess, results parsing): :mod:`harness.agents`.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.config.errors import SuiteError
from harness.core.cell import KINDS, Cell, CellKind
from harness.core import refs
from harness.core.refs import model_ref_problem
from harness.kinds.agents.runner import AgentRunner, check_servable, resolve_task_ids
from harness.kinds.agents.section import Agents
from harness.kinds.checks import adapter_instance, check_models, check_unique, model_grid


def tau2_data_dir(section: Agents) -> str | None:
    """``TAU2_DATA_DIR`` of the section's cells: ``None`` = τ²'s bundled data; ``data: data_dir``
    = ``$HARNESS_DATA_DIR`` (which must hold a ``tau2/`` folder).

    Raises:
        SuiteError: ``data: data_dir`` without a usable ``HARNESS_DATA_DIR``.
    """
    if section.defaults.data == "bundled":
        return None
    root = os.environ.get("HARNESS_DATA_DIR")
    if not root or not (Path(root) / "tau2" / "domains").is_dir():
        raise SuiteError(f"agents.defaults.data: data_dir needs HARNESS_DATA_DIR with a tau2/domains folder (got {root!r})")
    return str(Path(root).resolve())


def _endpoint(llm) -> str:
    """A user simulator / judge as ``validate`` shows it: the local model, or the endpoint,
    flagged when its requests leave this machine."""
    if llm.local:
        return llm.label
    where = llm.api_base or "the provider's default endpoint"
    note = " [yellow](remote: τ² conversations are sent to this endpoint)[/]" if llm.remote else ""
    return f"{llm.llm} at {where}{note}"


@KINDS.register("agent")
class AgentKind(AgentRunner, CellKind):
    """Agent cells (``kind = "agent"``, section ``agents:``)."""

    section = "agents"
    order = 20
    Section = Agents

    def describe(self, suite, a: Agents) -> str:
        d = a.defaults
        domains = ", ".join(
            f"{name} ({len(spec.task_ids)} task(s))" if spec.task_ids
            else f"{name} ({spec.num_tasks or 'all'} task(s) of {spec.split})"
            for name, spec in a.domains.items()
        )
        judge = _endpoint(a.judge) if a.judge else "none (reward_db_only)"
        return (f"agents (τ²): {len(a.models)} model(s) × {len(a.variants)} variant(s) × "
                f"{len(a.domains)} domain(s): {domains} × {d.trials} trial(s) × {d.repeats} repeat(s); "
                f"max_steps {d.max_steps}, max_tokens {d.max_tokens}, seed {d.seed}, data {d.data}; "
                f"user simulator {_endpoint(a.user)}; judge {judge}")

    def check(self, suite, section: Agents, source: str) -> None:
        """Models, adapters and params (a variant needing a calibration task is refused:
        :func:`.runner.check_servable`), duplicate variants, the user simulator and judge, and
        each domain's task selection (read from τ²'s files, τ² not imported; skipped where the
        data cannot be reached yet: the run checks it then)."""
        from harness.agents.tau2_run import Tau2Unavailable

        where = "agents"
        check_models(section.models, source, f"{where}.models")
        keys = []
        for i, variant in enumerate(section.variants):
            adapter = adapter_instance(variant.adapter, variant.params, source, f"{where}.variants[{i}]")
            if getattr(variant, "compile", None) is not None:
                raise SuiteError(f"{source}: {where}.variants[{i}].compile: the compiled decode step is for "
                                 "evaluation (top-level variants) only; a served variant decodes eagerly")
            try:
                adapter.check(section.defaults.max_tokens)
                check_servable(adapter)
            except ValueError as exc:
                raise SuiteError(f"{source}: {where}.variants[{i}].params: {exc}") from None
            keys.append((variant.name, [variant.adapter, adapter.params.model_dump(mode="json"), variant.dtype]))
        check_unique(keys, source, f"{where}.variants", "adapter, params and dtype")
        for role in ("user", "judge"):
            llm = getattr(section, role)
            if llm is None:
                continue
            if llm.local:
                problem = model_ref_problem(llm.model)
                if problem:
                    raise SuiteError(f"{source}: {where}.{role}.model: {problem}")
                adapter = adapter_instance(llm.adapter, llm.params, source, f"{where}.{role}")
                try:
                    check_servable(adapter)
                except ValueError as exc:
                    raise SuiteError(f"{source}: {where}.{role}.params: {exc}") from None
            elif llm.api_base is not None and not llm.api_base.startswith(("http://", "https://")):
                raise SuiteError(f"{source}: {where}.{role}.api_base: not an http(s) URL: {llm.api_base!r}")
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
                raise SuiteError(f"{source}: {where}.domains.{domain}: {exc}") from None
            if not ids:
                raise SuiteError(f"{source}: {where}.domains.{domain}: no tasks selected")

    def expand(self, suite, section: Agents, limit: int | None, model_ids: dict[str, str]) -> list[Cell]:
        """Agent cells: model × variant × τ² domain × repeat (task ``tau2/<domain>``); the
        settings hold the τ² settings, the user simulator and judge, and the data directory."""
        from harness.adapters import ADAPTERS
        from harness.agents.tau2_run import data_version

        d = section.defaults
        data_dir = tau2_data_dir(section)
        cells = []
        for ref, variant, params in model_grid(section.models, section.variants, model_ids,
                                               lambda r: refs.resolve(r).canonical_id, ADAPTERS):
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
                    cells.append(Cell(
                        suite=suite.name, model_ref=ref, model_id=model_ids[ref], variant=variant, params=params,
                        task=f"tau2/{domain}", task_version=version, limit=None, batch_size=1,
                        max_new_tokens=d.max_tokens, seed=d.seed, repeat=repeat, device=suite.defaults.device,
                        kind="agent", settings={**agent, "timeout_s": d.timeout_s},
                        # "train": None keeps agent cells' hashes as first recorded (schema 1.3)
                        identity_extra={"kind": "agent", "train": None, "agent": agent},
                    ))
        return cells
