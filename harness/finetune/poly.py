"""Poly and Multi-Head Routing (MHR): task-routed LoRA skills through ``peft``'s ``PolyConfig``.

Sources: Ponti et al., "Combining Parameter-efficient Modules for Task-level Generalisation"
(Polytropon, arXiv 2202.13914) and Caccia et al., "Multi-Head Adapter Routing for Cross-Task
Generalization", arXiv 2211.03831. Each adapted Linear holds ``n_skills`` LoRA modules; a
learned per-task routing vector mixes them. MHR splits every LoRA into ``n_splits`` blocks and
routes each block separately (``n_splits > 1``), which the paper finds more expressive for the
same parameters.

Multi-task GLUE: a cell of task ``t`` trains ``t`` and ``co_tasks`` together, one task per step
in turn (so the cell's task gets ``steps / n_tasks`` of the steps), with one routing row and one
head slice per task; the cell's task is task 0 and its metric is reported.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune


class PolyParams(FinetuneParams):
    """Poly settings (peft ``PolyConfig``)."""

    r: int = Field(4, ge=1, description="rank of each LoRA skill")
    n_skills: int = Field(4, ge=1, description="LoRA skills per adapted layer")
    n_splits: int = Field(1, ge=1, description="routing heads per skill (> 1 is Multi-Head Routing)")
    co_tasks: tuple[str, ...] = Field((), description="GLUE tasks trained together with the cell's task")
    target_modules: tuple[str, ...] = Field(("query", "value"), min_length=1, description="Linear module names adapted")


class MhrParams(PolyParams):
    """MHR: Poly with ``n_splits > 1``."""

    n_splits: int = Field(4, ge=2, description="routing heads per skill (must be > 1)")


@register_finetune("poly")
class Poly(FinetuneAdapter):
    """Task-routed mixtures of LoRA skills, one routing vector per task."""

    paper = "Combining Parameter-efficient Modules for Task-level Generalisation"
    arxiv = "2202.13914"
    Params: ClassVar = PolyParams
    counters = {"n_tasks": "tasks trained together in the cell"}

    def check(self, task: str) -> None:
        from harness.finetune.data import get_finetune_task

        labels = {get_finetune_task(t).num_labels for t in self.tasks(task)}
        if len(labels) > 1:
            raise ValueError(f"{self.name}: co-trained tasks must have the same number of labels, got {sorted(labels)}")

    def tasks(self, task: str) -> list[str]:
        return [task] + [t for t in dict.fromkeys(self.params.co_tasks) if t != task]

    def num_labels(self, ctx) -> int:
        return ctx.task.num_labels * len(ctx.data.tasks)

    def prepare(self, model, ctx):
        """Wrap with peft Poly; the head has ``labels x n_tasks`` logits (one slice per task).
        Remembers the label and task counts on this adapter instance (one per cell)."""
        from peft import PolyConfig, TaskType, get_peft_model

        p = self.params
        self.labels_per_task = ctx.task.num_labels
        config = PolyConfig(
            task_type=TaskType.SEQ_CLS,
            r=p.r,
            n_tasks=len(ctx.data.tasks),
            n_skills=p.n_skills,
            n_splits=p.n_splits,
            target_modules=list(p.target_modules),
        )
        self.n_tasks = len(ctx.data.tasks)
        return get_peft_model(model, config)

    def logits(self, model, batch):
        import torch

        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        full = model(**inputs, task_ids=batch["task_ids"]).logits  # [B, n_tasks * labels]
        k = self.labels_per_task
        grouped = full.view(full.shape[0], -1, k)  # [B, n_tasks, labels]: one head slice per task
        return grouped[torch.arange(full.shape[0]), batch["task_ids"]]

    def result_counters(self, model):
        return {"n_tasks": float(self.n_tasks)}


@register_finetune("mhr")
class Mhr(Poly):
    """Multi-Head Routing: each skill split into ``n_splits`` separately routed blocks."""

    paper = "Multi-Head Adapter Routing for Cross-Task Generalization"
    arxiv = "2211.03831"
    Params: ClassVar = MhrParams
