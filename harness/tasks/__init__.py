"""Benchmark tasks: data access, prompts, references and graders.

Importing this package is light (no torch, datasets or math-verify/sympy; those load on first use).
Each task module registers its spec (:func:`register_task`); modules are discovered.

    from harness.tasks import get_task, grade
    task = get_task("gsm8k")
    docs = task.load_docs()            # list of dicts, each with doc_id
    prompt = task.prompt(docs[0])
    g = task.grade(output_text, task.reference(docs[0]))   # -> Grade (truncated=True: cut at the token cap)
    g = task.grade_doc(output_text, docs[0])                # the same; a doc without a reference: an error Grade
"""

from __future__ import annotations

import difflib

from harness.core.registry import UnknownNameError, discover
from harness.tasks.choice import ChoiceTaskSpec
from harness.tasks.data import DATA_DIR_ENV, DataError, data_dir, load_jsonl_or_hub
from harness.tasks.grading import Grade, last_boxed
from harness.tasks.registry import TASKS, get_task, register_task
from harness.tasks.spec import ReferenceUnavailable, TaskSpec

discover(__name__)  # each task module registers its spec

__all__ = [
    "ChoiceTaskSpec",
    "DATA_DIR_ENV",
    "DataError",
    "Grade",
    "ReferenceUnavailable",
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


def grade(task_name: str, prediction: str, reference: str, truncated: bool = False) -> Grade:
    """Grade ``prediction`` against ``reference`` with the grader of ``task_name``; ``truncated``:
    the output stopped at the token cap (generation tasks credit only an explicit final answer).

    Raises UnknownNameError (a KeyError) for an unknown task; grading itself never raises.
    """
    spec = get_task(task_name)
    if isinstance(spec, TaskSpec):
        return spec.grade(prediction, reference, truncated=truncated)
    return spec.grade(prediction, reference)
