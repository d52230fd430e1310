"""The gate's statistics: a paired accuracy test, a ratio-with-spread test for costs.

Accuracy is compared on the *same samples* (matched by ``doc_id``), so the test is paired:

- 0/1 grades: the exact McNemar test (Q. McNemar, "Note on the sampling error of the difference
  between correlated proportions or percentages", Psychometrika 12(2):153-157, 1947). Only the
  discordant pairs carry information: ``b`` = right in the baseline, wrong in the candidate;
  ``c`` = wrong in the baseline, right in the candidate. Under "no difference" ``b`` is
  Binomial(b + c, 1/2); the exact two-sided p-value is that binomial test's
  (``scipy.stats.binomtest``). Example: b = 3, c = 0 gives p = 0.25; b = 25, c = 0 gives
  p = 6e-8.
- other scores: a paired bootstrap of the mean difference (Efron & Tibshirani, *An Introduction
  to the Bootstrap*, 1993, section 16.4): resample the pairs, centre the resampled means on the
  observed one, and count how often they lie at least as far from it as the observed mean lies
  from zero.

A regression is a drop that is *both* significant at ``alpha`` (two-sided test) *and* larger than
an absolute tolerance: with few samples a large drop can be noise (not significant); with many, a
significant drop can be too small to matter (within tolerance). Since the test is two-sided and
only drops fail, the false-alarm rate under "no difference" is at most ``alpha / 2`` (the exact
test is conservative, so less); ``benchmarks/gate_power.py`` measures it and the power.

Costs: candidate/baseline ratio of the means over repeats, failing above ``1 + tolerance`` where
the tolerance widens to ``spread_factor`` × the larger side's coefficient of variation (run-to-run
spread measured, not assumed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import binomtest

from harness.core.stats import coefficient_of_variation

__all__ = [
    "AccuracyTest",
    "CostTest",
    "accuracy_test",
    "cost_test",
    "mcnemar_exact",
    "paired_bootstrap_p",
]

_EPS = 1e-12


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts ``b`` and ``c``.

    ``b`` = pairs right in the baseline and wrong in the candidate, ``c`` = the reverse.
    Returns 1.0 when there is no discordant pair.
    """
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(min(1.0, binomtest(b, b + c, 0.5, alternative="two-sided").pvalue))


def paired_bootstrap_p(diffs: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> float:
    """Two-sided paired-bootstrap p-value for "mean of ``diffs`` is 0".

    ``p = (1 + #{|m* - d̄| >= |d̄|}) / (n_boot + 1)`` over the means ``m*`` of ``n_boot`` resamples
    of the pairs (deterministic for a ``seed``). 1.0 for no or constant-zero differences.
    """
    d = np.asarray(diffs, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return 1.0
    observed = float(d.mean())
    if abs(observed) < _EPS:
        return 1.0
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // d.size))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = d[rng.integers(0, d.size, size=(stop - start, d.size))].mean(axis=1)
    extreme = int(np.sum(np.abs(means - observed) >= abs(observed) - _EPS))
    return (1 + extreme) / (n_boot + 1)


@dataclass(frozen=True)
class AccuracyTest:
    """Outcome of :func:`accuracy_test` (accuracies as fractions; ``delta`` = candidate − baseline)."""

    n: int
    baseline: float
    candidate: float
    delta: float
    p_value: float
    method: str  # "mcnemar_exact" | "paired_bootstrap"
    b: int | None  # discordant: baseline right, candidate wrong (McNemar only)
    c: int | None  # discordant: baseline wrong, candidate right (McNemar only)
    alpha: float
    tolerance: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def regression(self) -> bool:
        """A drop larger than the tolerance *and* significant at ``alpha``."""
        return self.delta < -(self.tolerance + _EPS) and self.significant


def _binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


def accuracy_test(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
    tolerance: float = 0.01,
    n_boot: int = 2000,
    seed: int = 0,
) -> AccuracyTest:
    """Paired test of per-sample correctness, ``baseline[i]`` and ``candidate[i]`` on the same sample.

    Missing grades (None/NaN) count as wrong (0): a sample the candidate failed to answer is not
    a sample to drop. Exact McNemar when every grade is 0/1, else a paired bootstrap.

    Raises:
        ValueError: if the two sequences differ in length or are empty.
    """
    base = np.nan_to_num(np.asarray(baseline, dtype=np.float64), nan=0.0)
    cand = np.nan_to_num(np.asarray(candidate, dtype=np.float64), nan=0.0)
    if base.shape != cand.shape or base.ndim != 1:
        raise ValueError(f"paired samples must be 1-D of equal length, got {base.shape} and {cand.shape}")
    if base.size == 0:
        raise ValueError("no paired samples")
    base_acc, cand_acc = float(base.mean()), float(cand.mean())
    if _binary(base) and _binary(cand):
        b = int(np.sum((base == 1.0) & (cand == 0.0)))
        c = int(np.sum((base == 0.0) & (cand == 1.0)))
        p, method = mcnemar_exact(b, c), "mcnemar_exact"
    else:
        b = c = None
        p, method = paired_bootstrap_p(cand - base, n_boot=n_boot, seed=seed), "paired_bootstrap"
    return AccuracyTest(
        n=int(base.size),
        baseline=base_acc,
        candidate=cand_acc,
        delta=cand_acc - base_acc,
        p_value=p,
        method=method,
        b=b,
        c=c,
        alpha=alpha,
        tolerance=tolerance,
    )


@dataclass(frozen=True)
class CostTest:
    """Outcome of :func:`cost_test`: ``ratio`` = mean(candidate) / mean(baseline)."""

    baseline: float
    candidate: float
    ratio: float
    cv_baseline: float
    cv_candidate: float
    tolerance: float  # the effective one: max(configured, spread_factor × max CV)
    n_baseline: int
    n_candidate: int

    @property
    def regression(self) -> bool:
        return self.ratio > 1.0 + self.tolerance + _EPS


def _cv(x: np.ndarray) -> float:
    return coefficient_of_variation(x) or 0.0


def cost_test(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    tolerance: float,
    spread_factor: float = 2.0,
) -> CostTest:
    """Ratio of mean costs over repeats against ``max(tolerance, spread_factor × CV)``.

    ``CV`` is the larger of the two sides' coefficients of variation (sample standard deviation
    over the mean). None/NaN values are dropped; the caller checks there are enough repeats.

    Raises:
        ValueError: if a side has no value or the baseline's mean is not positive.
    """
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    b, c = b[~np.isnan(b)], c[~np.isnan(c)]
    if b.size == 0 or c.size == 0:
        raise ValueError("cost_test needs values on both sides")
    mb, mc = float(b.mean()), float(c.mean())
    if not mb > 0:
        raise ValueError(f"baseline mean must be > 0, got {mb}")
    cvb, cvc = _cv(b), _cv(c)
    eff = max(tolerance, spread_factor * max(cvb, cvc))
    return CostTest(mb, mc, mc / mb, cvb, cvc, eff, int(b.size), int(c.size))


def length_ratio(baseline_tokens: Sequence[float], candidate_tokens: Sequence[float]) -> tuple[float, float, float]:
    """``(baseline mean, candidate mean, ratio)`` of output tokens; ratio 1 for 0/0, inf for x/0."""
    b = np.asarray(baseline_tokens, dtype=np.float64)
    c = np.asarray(candidate_tokens, dtype=np.float64)
    b, c = b[~np.isnan(b)], c[~np.isnan(c)]
    mb = float(b.mean()) if b.size else math.nan
    mc = float(c.mean()) if c.size else math.nan
    if mb == 0:
        return mb, mc, 1.0 if mc == 0 else math.inf
    return mb, mc, mc / mb
