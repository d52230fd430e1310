"""The gate's statistics on synthetic grades: exact McNemar, bootstrap, false alarms, power, costs.

The seeded trials call the statistics function directly (no files) to stay fast; the file-based
tests are in test_gate.py. benchmarks/gate_power.py measures the same curves with more trials.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from harness.gate.stats import accuracy_test, cost_test, length_ratio, mcnemar_exact, paired_bootstrap_p
from harness.config.gate import Gate

REPO = Path(__file__).resolve().parents[1]


def _power_module():
    spec = importlib.util.spec_from_file_location("gate_power", REPO / "benchmarks" / "gate_power.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 0) == pytest.approx(0.25)  # 2 * 0.5**3
    assert mcnemar_exact(0, 3) == pytest.approx(0.25)
    assert mcnemar_exact(25, 0) == pytest.approx(2 * 0.5**25)
    assert mcnemar_exact(5, 5) == 1.0
    # two-sided exact binomial with p = 1/2: 2 * P(X <= min(b, c)), capped at 1
    for b, c in [(10, 3), (40, 22), (7, 1), (100, 80)]:
        expected = min(1.0, 2 * binom.cdf(min(b, c), b + c, 0.5))
        assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_accuracy_test_counts_discordant_pairs():
    base = np.array([1, 1, 1, 0, 0, 1, 0, 1], dtype=float)
    cand = np.array([1, 0, 0, 0, 1, 1, 0, 0], dtype=float)
    t = accuracy_test(base, cand)
    assert (t.b, t.c, t.n) == (3, 1, 8)
    assert t.method == "mcnemar_exact"
    assert t.delta == pytest.approx(-2 / 8)
    assert t.p_value == pytest.approx(mcnemar_exact(3, 1))
    assert not t.regression  # a 25-point drop, but 3 vs 1 discordant pairs is not significant


def test_missing_grade_counts_as_wrong():
    t = accuracy_test([1.0, 1.0, 0.0], [1.0, float("nan"), 0.0])
    assert (t.b, t.c) == (1, 0)


def test_five_points_removed_on_500_is_a_regression():
    rng = np.random.default_rng(7)
    base = (rng.random(500) < 0.6).astype(float)
    cand = base.copy()
    cand[rng.choice(np.flatnonzero(base == 1), size=25, replace=False)] = 0.0
    t = accuracy_test(base, cand)
    assert t.delta == pytest.approx(-0.05)
    assert (t.b, t.c) == (25, 0)
    assert t.p_value < 1e-6 and t.regression


def test_large_but_insignificant_drop_passes():
    """n = 40, 3 net flips: a 7.5-point drop (> 1-point tolerance) with p = 0.25."""
    base = np.array([1.0] * 24 + [0.0] * 16)
    cand = base.copy()
    cand[:3] = 0.0
    t = accuracy_test(base, cand)
    assert t.delta == pytest.approx(-0.075)
    assert t.p_value == pytest.approx(0.25)
    assert not t.regression


def test_significant_drop_within_tolerance_passes():
    base = np.ones(5000)
    cand = base.copy()
    cand[:40] = 0.0  # 0.8 points, p ~ 1e-12
    t = accuracy_test(base, cand, tolerance=0.01)
    assert t.significant and not t.regression
    assert accuracy_test(base, cand, tolerance=0.005).regression


def test_improvement_is_never_a_regression():
    base = np.zeros(500)
    cand = np.ones(500)
    t = accuracy_test(base, cand)
    assert t.significant and not t.regression


def test_paired_bootstrap_for_non_binary_scores():
    rng = np.random.default_rng(0)
    base = rng.random(300)
    same = accuracy_test(base, base + rng.normal(0, 0.01, 300))
    assert same.method == "paired_bootstrap" and same.b is None
    assert not same.regression
    worse = accuracy_test(base, base - 0.05 + rng.normal(0, 0.01, 300))
    assert worse.p_value < 0.01 and worse.regression
    assert paired_bootstrap_p(np.zeros(10)) == 1.0
    assert paired_bootstrap_p([]) == 1.0


@pytest.mark.parametrize("n,p", [(500, 0.5), (500, 0.8), (40, 0.5)])
def test_false_alarm_rate_under_noise(n, p):
    """Independent per-sample re-draws from the baseline's accuracy: >= 95 % of 200 trials pass,
    although observed drops above the tolerance happen often by chance."""
    mod = _power_module()
    fails, beyond_tol = mod.fail_rate(n, p, 0.0, trials=200, seed=0, model="redraw")
    assert fails <= 10, f"false alarms {fails}/200"
    assert beyond_tol >= 40, "the noise model should produce chance drops above the tolerance"


def test_false_alarm_rate_iid_null():
    """Both sides drawn from the same true accuracy (harsher null): still >= 95 % pass."""
    fails, beyond_tol = _power_module().fail_rate(500, 0.5, 0.0, trials=200, seed=0, model="iid")
    assert fails <= 10 and beyond_tol >= 40


def test_power_at_500_is_sane():
    """benchmarks/gate_power.py measures the smallest drop failed in >= 80 % of trials at n = 500
    (independent re-draws, p = 0.5: about 8-9 points). Bound it on both sides."""
    mod = _power_module()
    big, _ = mod.fail_rate(500, 0.5, 0.12, trials=200, seed=1, model="redraw")
    small, _ = mod.fail_rate(500, 0.5, 0.03, trials=200, seed=1, model="redraw")
    assert big / 200 >= 0.8
    assert small / 200 < 0.8
    flips, _ = mod.fail_rate(500, 0.5, 0.02, trials=50, seed=1, model="flip")
    assert flips == 50  # 10 flips, all one way: always detected


def test_cost_test_ratio_and_spread():
    t = cost_test([1.0, 1.0, 1.0], [1.2, 1.2, 1.2], tolerance=0.10)
    assert t.ratio == pytest.approx(1.2) and t.regression and t.tolerance == pytest.approx(0.10)
    noisy = cost_test([1.0, 1.3, 0.7], [1.2, 1.2, 1.2], tolerance=0.10, spread_factor=2.0)
    assert noisy.cv_baseline == pytest.approx(0.3)
    assert noisy.tolerance == pytest.approx(0.6) and not noisy.regression
    assert not cost_test([1.0] * 3, [0.5] * 3, tolerance=0.1).regression
    with pytest.raises(ValueError):
        cost_test([0.0, 0.0], [1.0], tolerance=0.1)


def test_length_ratio():
    assert length_ratio([10, 20], [5, 10]) == (15.0, 7.5, 0.5)
    assert length_ratio([0, 0], [0, 0])[2] == 1.0
    assert math.isinf(length_ratio([0], [3])[2])


def test_gate_defaults_and_validation():
    g = Gate()
    assert (g.alpha, g.accuracy_tolerance, g.length_band, g.min_repeats) == (0.05, 0.01, (0.9, 1.1), 3)
    with pytest.raises(ValueError):
        Gate(length_band=(1.1, 1.2))
    with pytest.raises(ValueError):
        Gate(alfa=0.1)
    with pytest.raises(ValueError):
        Gate(cost_tolerance={"latency_p50": 0.1})
