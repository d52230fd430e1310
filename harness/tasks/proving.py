"""Proving tasks: a formal statement per problem, checked by a proof checker (the ``prove:``
section of a suite, :mod:`harness.kinds.prove`), not by lm-eval. Their own registry,
:data:`PROVING_TASKS`, keeps them out of evaluation suites' ``tasks:``.

A task gives the problems (docs), the two prompts (proof body only, or reasoning first: the
``cot_switch`` strategy's two modes), the extraction of a proof body from a model's reply, and
the checker family (``metamath`` or ``lean``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.core.registry import Registry
from harness.tasks.data import DATA_DIR_ENV, DataError, data_dir, read_jsonl

__all__ = ["PROVING_TASKS", "ProvingTask", "extract_fenced", "get_proving_task", "register_proving_task"]

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?")


def extract_fenced(text: str) -> str:
    """The proof part of a reply: the last complete fenced code block's content; else, when a
    block was opened and never closed (the reply hit the token cap), what follows the last
    opening fence; else the whole reply. Stripped of surrounding blank space."""
    blocks = _FENCE.findall(text)
    if blocks:
        return blocks[-1].strip()
    opened = list(_OPEN_FENCE.finditer(text))
    if opened:
        return text[opened[-1].end():].strip()
    return text.strip()


@dataclass(frozen=True)
class ProvingTask:
    """One proving benchmark split.

    Attributes:
        name, version: registry name and version (bump on any prompt, extraction or data change).
        checker: ``metamath`` or ``lean``.
        data_relpath: the JSONL file under ``$HARNESS_DATA_DIR``; ``size``: its rows.
        required_fields: fields every row must have.
        lean_version: the Lean version the data targets (Lean tasks; the checker's must match).
        prompt_fn: ``(doc, cot) -> user message``; ``extract_fn``: reply → proof body.
    """

    name: str
    version: str
    description: str
    checker: str
    data_relpath: str
    size: int
    required_fields: tuple[str, ...]
    prompt_fn: Callable[[dict, bool], str] = field(repr=False)
    extract_fn: Callable[[str], str] = field(repr=False, default=extract_fenced)
    lean_version: str | None = None

    def load_docs(self) -> list[dict]:
        """Every problem in file order, each with ``doc_id`` = row index.

        Raises:
            DataError: ``HARNESS_DATA_DIR`` unset (no hub copy of these files), the file
                missing, the wrong row count or a missing field.
        """
        base = data_dir()
        if base is None:
            raise DataError(f"task {self.name!r} reads {self.data_relpath} under {DATA_DIR_ENV}, which is not set "
                            "(there is no hub copy of this form of the data)")
        path = base / self.data_relpath
        if not path.is_file():
            raise DataError(f"data file not found: {path} ({DATA_DIR_ENV}={str(base)!r}; expected <{DATA_DIR_ENV}>/{self.data_relpath})")
        rows = read_jsonl(path)
        if len(rows) != self.size:
            raise DataError(f"task {self.name!r}: expected {self.size} problems in {path}, got {len(rows)}")
        docs = []
        for i, row in enumerate(rows):
            missing = [f for f in self.required_fields if f not in row]
            if missing:
                raise DataError(f"task {self.name!r}: row {i} of {path} lacks field(s) {missing}")
            docs.append({**row, "doc_id": i})
        return docs

    def prompt(self, doc: dict, cot: bool = False) -> str:
        """The user message for ``doc``: proof body only (``cot=False``) or reasoning first."""
        return self.prompt_fn(doc, cot)

    def extract(self, reply: str) -> str:
        """The proof attempt in a model's reply (what the checker gets)."""
        return self.extract_fn(reply)


PROVING_TASKS: Registry = Registry("proving task", ProvingTask)
"""Proving task name → :class:`ProvingTask` (filled by :mod:`harness.tasks.minif2f`)."""


def register_proving_task(task: ProvingTask) -> ProvingTask:
    return PROVING_TASKS.add(task.name, task)


def get_proving_task(name: str) -> ProvingTask:
    """The proving task ``name``.

    Raises:
        UnknownNameError: (a ``KeyError``) with the closest names.
    """
    return PROVING_TASKS.get(str(name))
