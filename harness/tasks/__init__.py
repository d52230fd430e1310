"""Benchmark tasks: data access, prompts, references and graders.

Importing this package is light (no torch, datasets or math-verify/sympy; those load on first use).
Each task module registers its spec (:func:`register_task`); modules are discovered.

    from harness.tasks import get_task, grade
    task = get_task("gsm8k")
    docs = task.load_docs()            # list of dicts, each with doc_id
    prompt = task.prompt(docs[0])
    g = task.grade(output_text, task.reference(docs[0]))   # -> Grade
"""

from __future__ import annotations

import difflib

from harness.core.registry import UnknownNameError, discover
from harness.tasks.choice import ChoiceTaskSpec
from harness.tasks.data import DATA_DIR_ENV, DataError, data_dir, load_jsonl_or_hub
from harness.tasks.grading import Grade, last_boxed
from harness.tasks.registry import TASKS, get_task, register_task
from harness.tasks.spec import TaskSpec

discover(__name__)  # each task module registers its spec

__all__ = [
    "ChoiceTaskSpec",
    "DATA_DIR_ENV",
    "DataError",
    "Grade",
    "TASKS",
    "TaskSpec",
    "UnknownNameError",
    "data_dir",
    "get_task",
    "grade",
    "last_boxed",
    "load_jsonl_or_hub",
    "register_task",
]


def grade(task_name: str, prediction: str, reference: str) -> Grade:
    """Grade ``prediction`` against ``reference`` with the grader of ``task_name``.

    Raises UnknownNameError (a KeyError) for an unknown task; grading itself never raises.
    """
    return get_task(task_name).grade(prediction, reference)
