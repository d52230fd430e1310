"""TaskSpec: the static description of one benchmark task (data source, prompt, reference, grader)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

from harness.tasks.data import DataError, load_jsonl_or_hub
from harness.tasks.grading import Grade

__all__ = ["ReferenceUnavailable", "TaskSpec"]


class ReferenceUnavailable(ValueError):
    """A doc has no usable reference (e.g. neither an ``answer`` nor a ``\\boxed{}`` in its
    ``solution``): its samples are graded ``error: ...``, the cell still runs."""


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task. Pure data plus functions; each task module instantiates one.

    Bump ``version`` whenever the prompt, the reference extraction or the grader changes: it is
    stored with every result (``task_version``) so that numbers from different graders are never
    mixed silently.
    """

    output_type: ClassVar[str] = "generate_until"  # lm-eval's request kind (ChoiceTaskSpec: multiple_choice)

    name: str
    version: str
    description: str
    data_relpath: str  # relative to $HARNESS_DATA_DIR, or an absolute path (your own file, read as it is)
    hub_id: str
    hub_config: str | None
    hub_split: str
    size: int  # number of docs in the full split
    prompt_template: str  # literal text; the one placeholder "{question}" becomes doc[question_field]
    question_field: str
    required_fields: tuple[str, ...]
    reference_fn: Callable[[dict], str] = field(repr=False)  # may raise (e.g. ReferenceUnavailable)
    grade_fn: Callable[..., Grade] = field(repr=False)  # (output_text, reference, truncated=False) -> Grade

    def load_docs(self) -> list[dict]:
        """All docs of the split in file order, each a fresh dict with ``doc_id`` = row index (int).

        Raises DataError when the data cannot be loaded, has the wrong number of rows or lacks a
        required field.
        """
        return load_checked_docs(self)

    def prompt(self, doc: dict) -> str:
        """The zero-shot user message for ``doc``.

        Plain substitution, not ``str.format``: the template's own braces (``\\boxed{}``) and any
        braces or ``$`` in the question stay as they are.
        """
        return self.prompt_template.replace("{question}", str(doc[self.question_field]))

    def reference(self, doc: dict) -> str:
        """The gold answer string for ``doc`` (what ``grade`` compares against).

        Raises:
            ReferenceUnavailable (or another exception of the task's ``reference_fn``): the doc has
            no usable reference; :meth:`grade_doc` turns that into a per-sample ``error`` grade.
        """
        return self.reference_fn(doc)

    def target(self, doc: dict) -> str:
        """:meth:`reference`, or ``""`` when the doc has none (lm-eval's ``doc_to_target``, which
        it calls for its sample log and which must not fail a cell)."""
        try:
            return self.reference(doc)
        except Exception:
            return ""

    def grade(self, output_text: str, reference: str | None, truncated: bool = False) -> Grade:
        """Grade a model output against a reference. Never raises; failures are incorrect Grades.

        ``truncated``: generation stopped at the token cap (``finish_reason == "length"``); a
        grader then credits only an explicit final answer. A missing reference (not a string, or
        blank) is an ``error: no reference`` grade.
        """
        if not isinstance(reference, str) or not reference.strip():  # None, or a null read back as NaN
            return Grade(correct=False, extracted=None, reference=reference, reason="error: no reference")
        try:
            return self.grade_fn(output_text, reference, truncated=truncated)
        except Exception as e:  # graders are written not to raise; this is the last line of defence
            return Grade(correct=False, extracted=None, reference=reference, reason=f"grader error: {type(e).__name__}: {e}")

    def grade_doc(self, output_text: str, doc: dict, truncated: bool = False) -> Grade:
        """Grade a model output for ``doc``: its :meth:`reference`, then :meth:`grade`. Never raises;
        a doc without a usable reference gives ``Grade(False, None, None, "error: <why>")``."""
        try:
            reference = self.reference(doc)
        except Exception as e:
            why = str(e) if isinstance(e, ReferenceUnavailable) else f"{type(e).__name__}: {e}"
            return Grade(correct=False, extracted=None, reference=None, reason=f"error: no usable reference: {why}")
        return self.grade(output_text, reference, truncated=truncated)


def load_checked_docs(task, check_row: Callable[[int, dict], None] | None = None) -> list[dict]:
    """The docs of ``task``'s split (its ``data_relpath``/``hub_*``, ``size``, ``required_fields``)
    in file order, each a fresh dict with ``doc_id`` = row index; ``check_row(i, row)`` may raise
    DataError for a task-specific problem.

    Raises:
        DataError: the data cannot be loaded, has the wrong number of rows or lacks a required field.
    """
    rows = load_jsonl_or_hub(task.data_relpath, task.hub_id, task.hub_config, task.hub_split)
    if len(rows) != task.size:
        raise DataError(
            f"task {task.name!r}: expected {task.size} docs from {task.data_relpath!r} / {task.hub_id!r}, "
            f"got {len(rows)}"
        )
    docs: list[dict] = []
    for i, row in enumerate(rows):
        missing = [f for f in task.required_fields if f not in row]
        if missing:
            raise DataError(f"task {task.name!r}: row {i} lacks field(s) {missing}")
        if check_row is not None:
            check_row(i, row)
        docs.append({**row, "doc_id": i})
    return docs
