"""Benchmark tasks: data access, prompts, references and graders.

Importing this package is light (no torch, datasets or math-verify/sympy; those load on first use).

    from harness.tasks import get_task, grade
    task = get_task("gsm8k")
    docs = task.load_docs()            # list of dicts, each with doc_id
    prompt = task.prompt(docs[0])
    g = task.grade(output_text, task.reference(docs[0]))   # -> Grade
"""

from __future__ import annotations

import difflib

from harness.tasks import glue as _glue
from harness.tasks.choice import ChoiceTaskSpec
from harness.tasks.data import DATA_DIR_ENV, DataError, data_dir, load_jsonl_or_hub
from harness.tasks.grading import Grade, last_boxed
from harness.tasks.gsm8k import TASK as GSM8K
from harness.tasks.math500 import TASK as MATH500
from harness.tasks.spec import TaskSpec

__all__ = [
    "ChoiceTaskSpec",
    "DATA_DIR_ENV",
    "DataError",
    "GSM8K",
    "Grade",
    "MATH500",
    "TASKS",
    "TaskSpec",
    "UnknownTaskError",
    "data_dir",
    "get_task",
    "grade",
    "last_boxed",
    "load_jsonl_or_hub",
]

TASKS: dict[str, TaskSpec | ChoiceTaskSpec] = {t.name: t for t in (GSM8K, MATH500, *_glue.TASKS)}


class UnknownTaskError(KeyError):
    """No task of that name. A KeyError, with a readable message (KeyError's str() would quote it)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return self.message


def get_task(name: str) -> TaskSpec | ChoiceTaskSpec:
    """The task spec registered as ``name``; UnknownTaskError (a KeyError) with a did-you-mean otherwise."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        pass
    valid = sorted(TASKS)
    close = difflib.get_close_matches(str(name).lower(), valid, n=1, cutoff=0.6)  # 0.5 offers sst2 for tau2
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownTaskError(name, f"unknown task {name!r}.{hint} Valid tasks: {', '.join(valid)}") from None


def grade(task_name: str, prediction: str, reference: str) -> Grade:
    """Grade ``prediction`` against ``reference`` with the grader of ``task_name``.

    Raises UnknownTaskError for an unknown task; grading itself never raises.
    """
    return get_task(task_name).grade(prediction, reference)
