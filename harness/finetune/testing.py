"""A tiny randomly initialised BERT and a learnable synthetic task: no download, seconds.

Used by the fine-tuning tests (contract battery and technique tests) and handy for quick
checks of a new technique: :func:`tiny_encoder_base` has the :class:`EncoderBase` interface
and :class:`SyntheticData` the :class:`harness.finetune.train.TrainData` one.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import torch

from harness.finetune.data import FINETUNE_TASKS, Encoded, collate
from harness.finetune.encoder import EncoderBase

VOCAB = 64
MARKERS = (7, 9)  # task k's label: is the first token MARKERS[k] (1) or MARKERS[k] + 1 (0)?


def tiny_encoder_base(seed: int = 0, layers: int = 4, hidden: int = 32, heads: int = 2,
                      dtype: torch.dtype = torch.float32) -> EncoderBase:
    """A BERT encoder with random weights (``layers`` blocks, width ``hidden``), frozen, eval mode."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=64, type_vocab_size=2,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = BertModel(config).to(dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return EncoderBase(model=model, tokenizer=None, config=config, source="tiny", canonical_id=f"tiny:bert@{seed}",
                       dtype="fp32", device="cpu")


def synthetic(task_index: int, n: int, seed: int) -> Encoded:
    """``n`` random sequences (ids 3..VOCAB-1): the first token says the label (``MARKERS``),
    so a few steps learn it through the first-token pooler (a task that needs no attention)."""
    rng = random.Random(seed * 1000 + task_index)
    ids, labels = [], []
    marker = MARKERS[task_index]
    others = [t for t in range(3, VOCAB) if t not in (7, 8, 9, 10)]
    for i in range(n):
        label = i % 2
        seq = [rng.choice(others) for _ in range(rng.randint(4, 11))]
        ids.append([marker if label else marker + 1, *seq])
        labels.append(label)
    task = list(FINETUNE_TASKS)[task_index]
    return Encoded(task, ids, [[0] * len(x) for x in ids], labels, [""] * n, list(range(n)))


class SyntheticData:
    """:class:`TrainData`'s interface over :func:`synthetic` tasks (``n_tasks`` of them)."""

    pad_id = 0

    def __init__(self, n_tasks: int = 1, holdout: int = 32, device: str = "cpu") -> None:
        names = list(FINETUNE_TASKS)
        self.tasks = [FINETUNE_TASKS[names[k]] for k in range(n_tasks)]
        self.device = device
        self._holdout = synthetic(0, holdout, seed=999)

    def stream(self, steps: int, batch_size: int, seed: int) -> Iterator[dict[str, Any]]:
        pools = [synthetic(k, 512, seed) for k in range(len(self.tasks))]
        rng = random.Random(seed)
        for step in range(steps):
            k = step % len(self.tasks)
            idx = rng.sample(range(len(pools[k])), batch_size)
            yield collate(pools[k], idx, self.pad_id, self.device, task_id=k)

    def holdout_set(self) -> Encoded:
        return self._holdout
