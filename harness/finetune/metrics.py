"""GLUE classification metrics on label lists (pure Python; no torch, no sklearn).

* accuracy: share of predictions equal to the reference.
* F1 of the positive class (label 1), GLUE's MRPC/QQP metric.
* Matthews correlation coefficient (binary or multi-class, Gorodkin's R_K), GLUE's CoLA metric;
  0 when a marginal is constant (sklearn's convention).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["accuracy", "f1_positive", "matthews_corrcoef", "task_metrics"]


def _check(pred: Sequence[int], ref: Sequence[int]) -> None:
    if len(pred) != len(ref):
        raise ValueError(f"predictions ({len(pred)}) and references ({len(ref)}) differ in length")


def accuracy(pred: Sequence[int], ref: Sequence[int]) -> float | None:
    """Share of exact matches; ``None`` for no samples."""
    _check(pred, ref)
    return sum(p == r for p, r in zip(pred, ref)) / len(ref) if ref else None


def f1_positive(pred: Sequence[int], ref: Sequence[int], positive: int = 1) -> float | None:
    """F1 of class ``positive``: ``2 TP / (2 TP + FP + FN)``; 0 when there is no TP."""
    _check(pred, ref)
    if not ref:
        return None
    tp = sum(p == positive and r == positive for p, r in zip(pred, ref))
    fp = sum(p == positive and r != positive for p, r in zip(pred, ref))
    fn = sum(p != positive and r == positive for p, r in zip(pred, ref))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def matthews_corrcoef(pred: Sequence[int], ref: Sequence[int]) -> float | None:
    """Matthews correlation (multi-class R_K form); 0 when predictions or references are constant."""
    _check(pred, ref)
    if not ref:
        return None
    n = len(ref)
    correct = sum(p == r for p, r in zip(pred, ref))
    p_count, r_count = Counter(pred), Counter(ref)
    labels = set(p_count) | set(r_count)
    cov_pr = correct * n - sum(p_count[k] * r_count[k] for k in labels)
    cov_pp = n * n - sum(v * v for v in p_count.values())
    cov_rr = n * n - sum(v * v for v in r_count.values())
    if cov_pp == 0 or cov_rr == 0:
        return 0.0
    return cov_pr / math.sqrt(cov_pp * cov_rr)


def task_metrics(pred: Sequence[int], ref: Sequence[int]) -> dict[str, float | None]:
    """``accuracy``, ``f1`` and ``mcc`` of one prediction list (each task reports all three;
    its headline metric is named by :attr:`harness.finetune.data.GlueTask.metric`)."""
    return {"accuracy": accuracy(pred, ref), "f1": f1_positive(pred, ref), "mcc": matthews_corrcoef(pred, ref)}
