"""GLUE tasks for fine-tuning cells: train and validation splits, tokenised, batched.

Splits come from ``$HARNESS_DATA_DIR/glue/<task>/<split>.jsonl`` (hub field names) or, with no
data dir, from the hub dataset ``nyu-mll/glue``. The offline copy has train splits for SST-2
(its first 10,000 rows, the same rows the hub path takes), MRPC, RTE and CoLA; QNLI, WNLI and
STS-B have validation only, MNLI and QQP are not in it, so they are not fine-tuning tasks here.
Validation is GLUE's dev set (labels public), as in every GLUE fine-tuning paper.

Metrics (GLUE's official ones): accuracy everywhere, F1 of the positive class (``equivalent``)
for MRPC, Matthews correlation for CoLA.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

from harness.tasks.data import DataError, load_jsonl_or_hub

__all__ = ["GlueTask", "FINETUNE_TASKS", "get_finetune_task", "Encoded", "encode", "batches", "train_order"]

HUB_ID = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueTask:
    """One GLUE classification task with a train split.

    Attributes:
        name: harness name (``sst2``...), also the data folder and the hub config.
        text_fields: one field (single sentence) or two (sentence pair).
        label_names: label index → name.
        metric: the task's headline metric: ``accuracy`` | ``f1`` | ``mcc``.
        train_file / validation_file: file names under ``glue/<name>/``.
        hub_train_split: the hub split matching the offline train file.
        version: bump when data, formatting or metric change.
    """

    name: str
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    metric: str
    train_file: str = "train.jsonl"
    validation_file: str = "validation.jsonl"
    hub_train_split: str = "train"
    version: str = "1.0"

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def load(self, split: str) -> list[dict]:
        """All rows of ``split`` (``train`` | ``validation``) as dicts.

        Raises:
            DataError: missing or unreadable file, or rows without the task's fields.
        """
        if split == "train":
            rows = load_jsonl_or_hub(f"glue/{self.name}/{self.train_file}", HUB_ID, self.name, self.hub_train_split)
        elif split == "validation":
            rows = load_jsonl_or_hub(f"glue/{self.name}/{self.validation_file}", HUB_ID, self.name, "validation")
        else:
            raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
        for i, row in enumerate(rows[:5]):
            missing = [f for f in (*self.text_fields, "label") if f not in row]
            if missing:
                raise DataError(f"glue/{self.name} {split} row {i}: missing field(s) {missing}")
        return rows


FINETUNE_TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in (
        GlueTask("sst2", ("sentence",), ("negative", "positive"), "accuracy",
                 train_file="train_first10000.jsonl", hub_train_split="train[:10000]"),
        GlueTask("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "f1"),
        GlueTask("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy"),
        GlueTask("cola", ("sentence",), ("unacceptable", "acceptable"), "mcc"),
    )
}
"""Fine-tuning tasks by name (GLUE tasks with a train split in the offline data)."""


def get_finetune_task(name: str) -> GlueTask:
    """The task named ``name``.

    Raises:
        KeyError: unknown name (message lists close and known names).
    """
    import difflib

    try:
        return FINETUNE_TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(FINETUNE_TASKS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(
            f"unknown fine-tuning task {name!r}{hint} (known: {', '.join(sorted(FINETUNE_TASKS))}; "
            "QNLI, WNLI and STS-B have no offline train split)"
        ) from None


@dataclass
class Encoded:
    """A tokenised split: per document token ids (no padding), token types, labels, texts."""

    task: str
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list[int]
    texts: list[str]
    doc_ids: list[int]

    def __len__(self) -> int:
        return len(self.labels)


def encode(task: GlueTask, rows: list[dict], tokenizer, max_length: int, doc_ids: list[int] | None = None) -> Encoded:
    """Tokenise rows (sentence or sentence pair), truncating to ``max_length`` tokens."""
    firsts = [r[task.text_fields[0]] for r in rows]
    seconds = [r[task.text_fields[1]] for r in rows] if len(task.text_fields) > 1 else None
    enc = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    types = enc.get("token_type_ids") or [[0] * len(ids) for ids in enc["input_ids"]]
    texts = firsts if seconds is None else [f"{a}\n{b}" for a, b in zip(firsts, seconds)]
    return Encoded(
        task=task.name,
        input_ids=[list(x) for x in enc["input_ids"]],
        token_type_ids=[list(x) for x in types],
        labels=[int(r["label"]) for r in rows],
        texts=texts,
        doc_ids=list(doc_ids) if doc_ids is not None else list(range(len(rows))),
    )


def train_order(n_rows: int, n_needed: int, seed: int) -> list[int]:
    """Row indices for ``n_needed`` training examples: seeded permutations, epoch after epoch."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < n_needed:
        perm = list(range(n_rows))
        rng.shuffle(perm)
        order += perm
    return order[:n_needed]


def collate(data: Encoded, idx: list[int], pad_id: int, device: str = "cpu", task_id: int | None = None) -> dict[str, Any]:
    """Right-padded tensors for documents ``idx``: ``input_ids``, ``attention_mask``,
    ``token_type_ids`` ``[B, T]``, ``labels [B]`` (and ``task_ids [B]`` when given)."""
    import torch

    width = max(len(data.input_ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(idx), width), dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        n = len(data.input_ids[i])
        ids[row, :n] = torch.tensor(data.input_ids[i])
        types[row, :n] = torch.tensor(data.token_type_ids[i])
        mask[row, :n] = 1
    batch = {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "token_type_ids": types.to(device),
        "labels": torch.tensor([data.labels[i] for i in idx], dtype=torch.long, device=device),
    }
    if task_id is not None:
        batch["task_ids"] = torch.full((len(idx),), task_id, dtype=torch.long, device=device)
    return batch


def batches(data: Encoded, batch_size: int, pad_id: int, device: str = "cpu") -> Iterator[dict[str, Any]]:
    """Evaluation batches over ``data`` in document order."""
    for start in range(0, len(data), batch_size):
        yield collate(data, list(range(start, min(start + batch_size, len(data)))), pad_id, device)
