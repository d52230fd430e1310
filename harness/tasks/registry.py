"""The task registry: every task module registers its spec here with :func:`register_task`."""

from __future__ import annotations

from harness.core.registry import Registry
from harness.tasks.choice import ChoiceTaskSpec
from harness.tasks.spec import TaskSpec

TASKS: Registry = Registry("task", (TaskSpec, ChoiceTaskSpec))
"""Task name → :class:`TaskSpec` (generation) or :class:`ChoiceTaskSpec` (log-likelihood)."""


def register_task(spec: TaskSpec | ChoiceTaskSpec) -> TaskSpec | ChoiceTaskSpec:
    """Register ``spec`` under its name; returns it (``TASK = register_task(TaskSpec(...))``)."""
    return TASKS.add(spec.name, spec)


def get_task(name: str) -> TaskSpec | ChoiceTaskSpec:
    """The task registered as ``name``.

    Raises:
        UnknownNameError: (a ``KeyError``) naming the closest tasks and every known one.
    """
    return TASKS.get(str(name))
