"""One attempt checked from the command line: ``harness grade minif2f_metamath -p '<proof>' -r
<problem name>`` (the checker the cells use, with the same rules)."""

from __future__ import annotations

import difflib

from harness.provers.verdict import Verdict


class UnknownProblem(KeyError):
    """No problem of that name in the task; ``str()`` names the closest ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def grade_one(task_name: str, proof: str, problem: str, checker_settings: dict | None = None) -> tuple[Verdict, dict]:
    """Check ``proof`` (the task's extraction applied) for the problem named ``problem``.

    Returns:
        The verdict and the checker's description.

    Raises:
        UnknownNameError: unknown proving task; UnknownProblem: no such problem;
        DataError: data missing; CheckerSetupError: checker missing or unusable.
    """
    from harness.kinds.prove.checkers import build
    from harness.tasks.proving import get_proving_task

    task = get_proving_task(task_name)
    docs = task.load_docs()
    by_name = {d["name"]: d for d in docs}
    by_name.update({d.get("label", d["name"]): d for d in docs})
    doc = by_name.get(problem)
    if doc is None:
        close = difflib.get_close_matches(problem, list(by_name), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownProblem(f"task {task_name!r} has no problem {problem!r}{hint}")
    checker = build(task, checker_settings or {}, docs)
    verdicts, _ = checker.check([(doc, task.extract(proof))])
    return verdicts[0], checker.describe()
