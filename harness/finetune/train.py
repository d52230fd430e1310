"""The training loop and evaluation shared by every fine-tuning technique.

AdamW over the trainable parameters, linear warm-up then linear decay to 0, gradient clipping,
one batch per step; what autograd saves for backward is measured every step
(:class:`harness.finetune.measure.SavedTensorMeter`). Multi-task techniques get batches of
their tasks in turn (step ``i`` trains task ``i mod T``), so every technique of a suite gets
the same number of optimizer steps and training examples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from harness.finetune.data import Encoded, GlueTask, batches, collate, encode, train_order

if TYPE_CHECKING:
    from harness.finetune.base import FinetuneAdapter

__all__ = ["TrainSettings", "FitResult", "TrainData", "train_model", "evaluate"]


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of one training cell (resolved from the suite).

    Attributes:
        steps: optimizer steps.
        batch_size: training examples per step.
        learning_rate: peak AdamW learning rate (linear warm-up, then linear decay to 0).
        weight_decay: AdamW decoupled weight decay.
        warmup_ratio: share of ``steps`` spent warming up.
        max_grad_norm: gradient clipping (global L2 norm).
        max_length: tokens per example (longer ones are truncated).
        eval_batch_size: validation examples per forward.
    """

    steps: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 128
    eval_batch_size: int = 64



@dataclass
class FitResult:
    """A trained model and what training measured.

    Attributes:
        model: the trained model, ready for :meth:`FinetuneAdapter.predict`.
        adapter: the adapter that evaluates it (a search returns the chosen configuration's).
        steps: optimizer steps taken (all trials' for a search).
        final_train_loss: mean training loss over the last 10 % of steps (at least one).
        saved_activation_bytes: largest bytes saved for backward in one step (see
            :mod:`harness.finetune.measure`); ``None`` when not measured.
        counters: technique figures stored as ``counter_<name>`` columns.
        extra: technique results stored as JSON (e.g. a search's Pareto set).
    """

    model: Any
    adapter: "FinetuneAdapter"
    steps: int
    final_train_loss: float | None
    saved_activation_bytes: int | None
    counters: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)



class TrainData:
    """Training examples of one cell: the cell's task first, then co-trained tasks.

    Tokenises lazily (only the rows the steps use). With ``holdout > 0`` the first ``holdout``
    rows of a fixed permutation of the first task's train split are kept out of every stream
    and served by :meth:`holdout_set` (a dev set carved from train, never from validation).

    Args:
        tasks: the tasks (:class:`GlueTask`), the cell's first.
        rows: task name → train rows.
        tokenizer: the encoder's tokenizer.
        max_length: truncation length in tokens.
        device: where batches go.
        holdout: rows of the first task held out.
    """

    HOLDOUT_SEED = 20_231_113

    def __init__(self, tasks: list[GlueTask], rows: dict[str, list[dict]], tokenizer, max_length: int,
                 device: str = "cpu", holdout: int = 0) -> None:
        self.tasks = tasks
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.rows = rows
        self.pool: dict[str, list[int]] = {t.name: list(range(len(rows[t.name]))) for t in tasks}
        self._holdout: list[int] = []
        if holdout:
            first = tasks[0].name
            perm = list(range(len(rows[first])))
            random.Random(self.HOLDOUT_SEED).shuffle(perm)
            if holdout >= len(perm):
                raise ValueError(f"holdout {holdout} leaves no {first} training rows (of {len(perm)})")
            self._holdout = sorted(perm[:holdout])
            held = set(self._holdout)
            self.pool[first] = [i for i in self.pool[first] if i not in held]
        self._cache: dict[tuple[str, int], tuple[list[int], list[int], int]] = {}

    def _encoded(self, task: GlueTask, idx: list[int]) -> Encoded:
        todo = [i for i in idx if (task.name, i) not in self._cache]
        if todo:
            enc = encode(task, [self.rows[task.name][i] for i in todo], self.tokenizer, self.max_length)
            for k, i in enumerate(todo):
                self._cache[(task.name, i)] = (enc.input_ids[k], enc.token_type_ids[k], enc.labels[k])
        items = [self._cache[(task.name, i)] for i in idx]
        return Encoded(task.name, [a for a, _, _ in items], [b for _, b, _ in items], [c for _, _, c in items],
                       [""] * len(idx), list(idx))

    def stream(self, steps: int, batch_size: int, seed: int) -> Iterator[dict[str, Any]]:
        """``steps`` training batches (seeded order; ``task_ids`` = the task's index)."""
        n_tasks = len(self.tasks)
        per_task = {t.name: -(-steps // n_tasks) * batch_size for t in self.tasks}
        orders = {
            t.name: [self.pool[t.name][i] for i in train_order(len(self.pool[t.name]), per_task[t.name], seed + k)]
            for k, t in enumerate(self.tasks)
        }
        used = {t.name: 0 for t in self.tasks}
        for step in range(steps):
            k = step % n_tasks
            task = self.tasks[k]
            start = used[task.name]
            idx = orders[task.name][start : start + batch_size]
            used[task.name] += batch_size
            enc = self._encoded(task, idx)
            yield collate(enc, list(range(len(idx))), self.pad_id, self.device, task_id=k)

    def holdout_set(self) -> Encoded:
        """The held-out rows of the first task, tokenised (empty without a holdout)."""
        return self._encoded(self.tasks[0], self._holdout)


def _lr_lambda(steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = max(1, int(round(steps * warmup_ratio))) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return factor


def train_model(adapter, model, stream, settings: TrainSettings, seed: int,
                on_step: Callable[[int, int], None] | None = None, steps: int | None = None) -> FitResult:
    """Train ``model``'s trainable parameters on ``stream`` with ``adapter``'s loss.

    Args:
        adapter: the technique (its :meth:`loss`).
        model: the prepared model (``requires_grad`` set by the technique).
        stream: iterator of training batches (at least ``steps`` of them).
        settings: optimisation settings; ``steps`` overrides ``settings.steps``.
        seed: seeds dropout.
        on_step: progress callback ``(done, total)``.

    Returns:
        A :class:`FitResult` (steps, mean loss of the last 10 % of steps, peak saved bytes).

    Raises:
        ValueError: the technique left nothing trainable.
    """
    import torch

    from harness.finetune.measure import SavedTensorMeter

    steps = settings.steps if steps is None else steps
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{adapter.name}: no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(steps, settings.warmup_ratio))
    meter = SavedTensorMeter(model)
    torch.manual_seed(seed)
    model.train()
    losses: list[float] = []
    for step, batch in zip(range(steps), stream):
        with meter.measure():
            loss = adapter.loss(model, batch)
        loss.backward()
        if settings.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if on_step:
            on_step(step + 1, steps)
    if len(losses) < steps:
        raise ValueError(f"the training stream ended after {len(losses)} of {steps} steps")
    tail = losses[-max(1, steps // 10):]
    return FitResult(model=model, adapter=adapter, steps=steps, final_train_loss=sum(tail) / len(tail),
                     saved_activation_bytes=meter.peak_bytes)


def evaluate(adapter, model, data: Encoded, batch_size: int, pad_id: int, device: str = "cpu",
             task_id: int = 0) -> dict[str, list[int]]:
    """Predicted labels per output name (``""`` = headline) for every document of ``data``."""
    import torch

    model.eval()
    preds: dict[str, list[int]] = {}
    with torch.no_grad():
        for batch in batches(data, batch_size, pad_id, device):
            batch["task_ids"] = torch.full_like(batch["labels"], task_id)
            for name, logits in adapter.predict(model, batch).items():
                preds.setdefault(name, []).extend(int(x) for x in logits.argmax(-1).tolist())
    return preds
