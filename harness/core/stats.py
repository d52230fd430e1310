"""Small, dependency-light statistics for cell summaries: intervals and percentiles.

All functions take plain sequences (lists, numpy arrays, pandas Series); ``None`` and NaN entries
are treated as missing and dropped where noted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "wilson_interval",
    "bootstrap_mean_ci",
    "percentile",
    "is_binary",
    "accuracy_with_ci",
    "pass_at_k",
]


def _as_float(v: object) -> float:
    if v is None or v is pd.NA or v is pd.NaT:
        return math.nan
    return float(v)  # type: ignore[arg-type]


def _clean(values: Iterable[float | int | bool | None]) -> np.ndarray:
    """Values as float64 with None/NaN/pd.NA dropped."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        arr = values.astype(np.float64, copy=False).reshape(-1)
    else:
        arr = np.asarray([_as_float(v) for v in values], dtype=np.float64).reshape(-1)
    return arr[~np.isnan(arr)]


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson, 1927).

    E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
    Journal of the American Statistical Association 22(158):209-212, 1927.

    With ``p = successes / n``::

        centre = (p + z^2 / (2n)) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))

    Unlike the normal (Wald) interval it stays inside [0, 1] and is not degenerate at p = 0 or 1.
    Example: 8 of 10 with z = 1.96 gives (0.4902, 0.9433).

    Args:
        successes: number of successes (a float is accepted, e.g. a sum of 0/1 values).
        n: number of trials.
        z: standard-normal quantile; 1.96 for a two-sided 95 % interval.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when ``n == 0`` (no data: no interval).

    Raises:
        ValueError: if ``n < 0`` or ``successes`` is outside ``[0, n]``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean (Efron & Tibshirani, 1993).

    Resamples ``values`` with replacement ``n_boot`` times (deterministic for a given ``seed``) and
    returns the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means.
    None/NaN values are dropped.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for no values; ``(v, v)`` for a single value.

    Raises:
        ValueError: if ``level`` is not in (0, 1) or ``n_boot < 1``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    x = _clean(values)
    if x.size == 0:
        return (math.nan, math.nan)
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, min(n_boot, 2_000_000 // x.size))  # bound memory: chunk x n indices at a time
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (``q`` in [0, 100]) with numpy's linear interpolation.

    None/NaN values are dropped. Returns None when no values remain.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    x = _clean(values)
    if x.size == 0:
        return None
    return float(np.percentile(x, q, method="linear"))


def is_binary(values: Sequence[float] | np.ndarray) -> bool:
    """True when every non-missing value is 0 or 1 (bool grades)."""
    x = _clean(values)
    return bool(np.all((x == 0.0) | (x == 1.0)))


def accuracy_with_ci(
    values: Sequence[float] | np.ndarray, seed: int = 0
) -> tuple[float | None, float | None, float | None]:
    """Mean score with a 95 % interval: Wilson for 0/1 grades, bootstrap of the mean otherwise.

    None/NaN values are dropped. Returns ``(mean, low, high)``, all None when no values remain.
    """
    x = _clean(values)
    if x.size == 0:
        return (None, None, None)
    mean = float(x.mean())
    if is_binary(x):
        low, high = wilson_interval(float(x.sum()), int(x.size))
    else:
        low, high = bootstrap_mean_ci(x, seed=seed)
    return (mean, low, high)


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased estimator of pass@k for one problem: the probability that at least one of ``k``
    attempts drawn without replacement from the ``n`` made, ``c`` of them correct, is correct::

        pass@k = 1 - C(n - c, k) / C(n, k)

    Chen et al. 2021, "Evaluating Large Language Models Trained on Code", arXiv 2107.03374
    (eq. 1). Computed exactly with integer binomials (``fractions.Fraction``), then rounded once
    to a float: ``pass_at_k(4, 2, 2) == 5/6``. Never the plug-in ``1 - (1 - c/n)^k``, which is
    biased. Average it over problems for a cell's figure.

    Args:
        n: attempts made (``>= 1``); ``c``: correct ones (``0 <= c <= n``); ``k``: ``>= 1``.

    Returns:
        The estimate in [0, 1]; ``None`` when ``k > n`` (not defined: fewer attempts than ``k``).

    Raises:
        ValueError: ``n < 1``, ``k < 1`` or ``c`` outside ``[0, n]``.
    """
    if n < 1 or k < 1:
        raise ValueError(f"pass@k needs n >= 1 and k >= 1, got n={n}, k={k}")
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got c={c}, n={n}")
    if k > n:
        return None
    from fractions import Fraction

    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def coefficient_of_variation(values: Iterable[float | int | None]) -> float | None:
    """Sample standard deviation (``ddof=1``) over ``|mean|`` of the finite values.

    None for fewer than two values or a zero mean (no spread can be stated).
    """
    x = _clean(values)
    if x.size < 2:
        return None
    mean = float(x.mean())
    if mean == 0:
        return None
    return float(x.std(ddof=1) / abs(mean))

