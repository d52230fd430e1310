"""TaskSpec: the static description of one benchmark task (data source, prompt, reference, grader)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

from harness.tasks.data import DataError, load_jsonl_or_hub
from harness.tasks.grading import Grade

__all__ = ["TaskSpec"]


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
    reference_fn: Callable[[dict], str] = field(repr=False)
    grade_fn: Callable[[str, str], Grade] = field(repr=False)

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
        """The gold answer string for ``doc`` (what ``grade`` compares against)."""
        return self.reference_fn(doc)

    def grade(self, output_text: str, reference: str) -> Grade:
        """Grade a model output against a reference. Never raises; failures are incorrect Grades."""
        try:
            return self.grade_fn(output_text, reference)
        except Exception as e:  # graders are written not to raise; this is the last line of defence
            return Grade(correct=False, extracted=None, reference=reference, reason=f"grader error: {type(e).__name__}: {e}")


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
