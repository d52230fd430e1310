"""The prove kind's view of a checker: build it for a task from the suite's ``checker:``
settings, check ``(doc, proof)`` attempts, say what it is. One interface over
:class:`harness.provers.metamath.MetamathChecker` and :class:`harness.provers.lean.LeanChecker`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from harness.provers.metamath_batch import MetamathProblem
from harness.provers.verdict import Verdict


class CheckerSetupError(RuntimeError):
    """A checker cannot be used for a task here (one line, naming what to install or fix)."""


def metamath_problem(doc: dict) -> MetamathProblem:
    """A Metamath miniF2F row as the checker writes it (``dv`` entries are space-separated)."""
    return MetamathProblem(
        name=doc["name"], label=doc["label"], hyps=tuple((h[0], h[1]) for h in doc["hyps"]),
        statement=doc["statement"], dv=tuple(tuple(str(d).split()) for d in doc.get("dv") or []),
    )


def forbidden_labels(docs: list[dict]) -> dict[str, str]:
    """Every problem's statement and hypothesis labels → its name (citable by no other problem)."""
    out = {}
    for doc in docs:
        out[doc["label"]] = doc["name"]
        out[doc["name"]] = doc["name"]
        for hyp in doc["hyps"]:
            out[hyp[0]] = doc["name"]
    return out


def identity(task, settings: dict) -> dict:
    """What a task's verdicts depend on (enters the cell identity; nothing runs)."""
    if task.checker == "metamath":
        from harness.provers.metamath import checker_identity

        return checker_identity()
    return {"checker": "lean", "lean_version": task.lean_version,
            "allow_native_decide": bool(settings.get("allow_native_decide"))}


@dataclass
class TaskChecker:
    """A checker bound to a task's problems."""

    task: object
    checker: object
    docs: list[dict]

    def check(self, attempts: list[tuple[dict, str]]) -> tuple[list[Verdict], list[tuple[int, float]]]:
        """Verdicts for ``(doc, proof text)`` attempts, in order, and the batches run
        (``(attempts, wall seconds)`` each)."""
        if not attempts:
            return [], []
        if self.task.checker == "metamath":
            verdicts, stats = self.checker.check([(metamath_problem(d), p) for d, p in attempts],
                                                 forbidden_labels(self.docs))
        else:
            verdicts, stats = self.checker.check(attempts)
        return verdicts, list(stats.batches)

    def describe(self) -> dict:
        return self.checker.describe()


def build(task, settings: dict, docs: list[dict]) -> TaskChecker:
    """The checker for ``task`` (its ``checker`` family) from ``checker:`` settings.

    Raises:
        CheckerSetupError: metamath or set.mm missing or wrong; no Lean back-end configured;
            a Lean set-up that does not answer or runs another Lean version than the data's.
    """
    if task.checker == "metamath":
        from harness.provers.metamath import CheckerUnavailable, MetamathChecker

        try:
            checker = MetamathChecker(attempt_timeout_s=settings.get("timeout_s", 30.0),
                                      read_timeout_s=settings.get("read_timeout_s", 120.0),
                                      batch_size=settings.get("batch_size", 256))
        except CheckerUnavailable as exc:
            raise CheckerSetupError(f"task {task.name!r}: {exc}") from None
        return TaskChecker(task, checker, docs)
    from harness.provers.lean import (
        KiminaServer,
        LeanChecker,
        LeanRepl,
        LeanUnavailable,
    )

    if settings.get("lean_repl"):
        backend = LeanRepl(settings["lean_repl"])
    elif settings.get("lean_url"):
        key_env = settings.get("lean_api_key_env")
        backend = KiminaServer(settings["lean_url"], os.environ.get(key_env) if key_env else None)
    else:
        raise CheckerSetupError(f"task {task.name!r} needs a Lean checker: set prove.checker.lean_repl "
                                "(a Lean + Mathlib project folder) or prove.checker.lean_url (a Kimina Lean Server)")
    checker = LeanChecker(backend, task.lean_version, bool(settings.get("allow_native_decide")),
                          settings.get("timeout_s", 60.0))
    try:
        checker.probe_version()
    except LeanUnavailable as exc:
        backend.close()
        raise CheckerSetupError(f"task {task.name!r}: {exc}") from None
    return TaskChecker(task, checker, docs)
