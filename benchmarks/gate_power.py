"""Operating characteristics of the regression gate's accuracy check (harness.gate.stats).

Simulates paired per-sample grades and runs the gate's own test (:func:`accuracy_test`, default
settings: two-sided exact McNemar at alpha = 0.05, 1-point tolerance) on them — no files, no model.

Models (baseline grades: Bernoulli(p) per sample; ``acc_b`` = the baseline's observed accuracy):

- noise: the candidate re-draws every sample independently with probability ``acc_b``. The true
  accuracy is unchanged, yet observed drops above the tolerance happen often by chance: the
  share of trials the gate fails is its *false-alarm rate*.
- iid: both sides are independent draws from the same true accuracy ``p`` (the baseline's own
  sampling noise counts too): a harsher null than "noise"; the false-alarm rate approaches
  ``alpha / 2``.
- redraw drop ``d``: the candidate re-draws every sample independently with ``acc_b - d``. No
  pairing helps here (the sides are independent): the hardest case, the headline power figure.
- flip drop ``d``: ``round(d * n)`` of the baseline's correct samples become wrong, nothing else
  changes (a technique that breaks some answers). All pairs discordant one way: detected as soon
  as the drop exceeds the tolerance and has >= 6 flips (two-sided p = 2 / 2^6 < 0.05).

Usage: ``.venv/bin/python benchmarks/gate_power.py [--n 500] [--trials 1000] [--p 0.5]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.gate.stats import accuracy_test
from harness.config.gate import Gate


def _baseline(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return (rng.random(n) < p).astype(np.float64)


def fail_rate(n: int, p: float, drop: float, trials: int, seed: int = 0, model: str = "redraw",
              alpha: float | None = None, tolerance: float | None = None) -> tuple[int, int]:
    """``(failures, chance_drops)`` over ``trials``: how often the gate failed, and how often the
    observed drop exceeded the tolerance. ``drop = 0`` with ``model="redraw"`` is the noise model.
    """
    g = Gate()
    alpha = g.alpha if alpha is None else alpha
    tolerance = g.accuracy_tolerance if tolerance is None else tolerance
    rng = np.random.default_rng(seed)
    fails = beyond_tol = 0
    for _ in range(trials):
        base = _baseline(rng, n, p)
        if model == "redraw":
            q = min(1.0, max(0.0, base.mean() - drop))
            cand = (rng.random(n) < q).astype(np.float64)
        elif model == "iid":  # both sides drawn from the same true accuracy p (minus the drop)
            cand = (rng.random(n) < max(0.0, p - drop)).astype(np.float64)
        elif model == "flip":
            cand = base.copy()
            right = np.flatnonzero(base == 1.0)
            k = min(len(right), int(round(drop * n)))
            cand[rng.choice(right, size=k, replace=False)] = 0.0
        else:
            raise ValueError(f"unknown model {model!r}")
        t = accuracy_test(base, cand, alpha=alpha, tolerance=tolerance)
        fails += t.regression
        beyond_tol += t.delta < -tolerance
    return fails, beyond_tol


def smallest_detected(n: int, p: float, trials: int, model: str = "redraw", power: float = 0.8,
                      step: float = 0.005, seed: int = 1) -> tuple[float, list[tuple[float, float]]]:
    """The smallest drop (on a ``step`` grid) the gate fails in >= ``power`` of trials, and the curve."""
    curve = []
    d = step
    while d <= 0.5:
        fails, _ = fail_rate(n, p, d, trials, seed=seed, model=model)
        curve.append((d, fails / trials))
        if fails / trials >= power:
            return d, curve
        d = round(d + step, 6)
    return float("nan"), curve


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--p", type=float, nargs="+", default=[0.5, 0.2, 0.8])
    args = ap.parse_args()
    g = Gate()
    print(f"gate defaults: alpha={g.alpha} (two-sided exact McNemar), tolerance={g.accuracy_tolerance * 100:.1f} pt")
    t0 = time.perf_counter()
    for p in args.p:
        print(f"\nn={args.n}, baseline accuracy p={p}, {args.trials} trials per point")
        for model in ("redraw", "iid"):
            for n_fa in (200, args.trials):
                fails, chance = fail_rate(args.n, p, 0.0, n_fa, seed=0, model=model)
                name = "noise" if model == "redraw" else "iid"
                print(f"  false alarms ({name} model): {fails}/{n_fa} = {fails / n_fa:.1%}; "
                      f"drops > tolerance by chance in {chance}/{n_fa}")
        for model in ("redraw", "iid", "flip"):
            d, curve = smallest_detected(args.n, p, args.trials, model=model)
            pts = ", ".join(f"{x * 100:.1f}pt:{y:.0%}" for x, y in curve[-4:])
            print(f"  smallest drop failed in >= 80 % ({model}): {d * 100:.1f} points   [{pts}]")
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
