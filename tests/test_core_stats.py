"""Intervals and percentiles against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.core.stats import (
    accuracy_with_ci,
    bootstrap_mean_ci,
    is_binary,
    percentile,
    wilson_interval,
)


def test_wilson_hand_computed():
    # p = 0.8, z^2/n = 0.38416: centre 0.71675, half-width 0.22658
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=5e-5)
    assert high == pytest.approx(0.9433, abs=5e-5)


def test_wilson_edges():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=5e-5)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=5e-5) and high == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    assert wilson_interval(50, 100, z=0)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(-1, 10)


def test_bootstrap_deterministic_and_sensible():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=200)
    a = bootstrap_mean_ci(x, seed=3)
    b = bootstrap_mean_ci(list(x), seed=3)
    assert a == b
    low, high = a
    assert low < x.mean() < high
    # close to the normal approximation for a mean of 200 uniforms
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_mean_ci(x, seed=4) != a


def test_bootstrap_edges():
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))
    assert bootstrap_mean_ci([0.3]) == (0.3, 0.3)
    assert bootstrap_mean_ci([0.5, None, float("nan"), 0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1.0, 2.0], level=1.0)
    # chunking gives the same answer as a single block would for any n_boot
    assert bootstrap_mean_ci(np.arange(10.0), n_boot=7)[0] <= 4.5


def test_percentile():
    vals = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(vals, 50) == 3.0
    assert percentile(vals, 90) == pytest.approx(np.percentile(vals, 90))
    assert percentile([1.0, None, float("nan"), 3.0], 50) == 2.0
    assert percentile(pd.Series([1.0, pd.NA, 5.0], dtype="Float64"), 50) == 3.0
    assert percentile([], 50) is None
    assert percentile([None], 50) is None
    with pytest.raises(ValueError):
        percentile(vals, 150)


def test_accuracy_with_ci_picks_the_method():
    mean, low, high = accuracy_with_ci([True] * 8 + [False] * 2)
    assert mean == 0.8 and (low, high) == pytest.approx(wilson_interval(8, 10))
    assert is_binary([0, 1, 1.0]) and not is_binary([0.5, 1.0])
    mean, low, high = accuracy_with_ci([0.2, 0.4, 0.9, 0.7])
    assert mean == pytest.approx(0.55) and (low, high) == bootstrap_mean_ci([0.2, 0.4, 0.9, 0.7])
    assert accuracy_with_ci([]) == (None, None, None)
