"""``cot_switch``: EconProver's dynamic chain-of-thought switch, as a cascade.

Paper: Li et al. 2025, "EconProver: Towards More Economical Test-Time Scaling for Automated
Theorem Proving", arXiv 2509.12603. It measures a prover's cost by the tokens of all sampling
passes (its "token-level sampling cost", here ``tokens_per_proved``) and cuts it by reasoning
(CoT) only where needed, reporting comparable miniF2F results at ~12 % of the cost.

What is approximated: the paper *trains* the switch (the model learns to decide, per problem,
whether to reason before it writes). Here the switch is a fixed cascade driven by the proof
checker's verdicts, which adapters never see (hence a strategy of the prove kind, not an
adapter): ``k1`` proof-only attempts per problem, then ``samples - k1`` attempts with CoT for the
problems still unproved. Modes:

* ``never`` — ``samples`` proof-only attempts (independent draws: pass@k);
* ``always`` — ``samples`` CoT attempts (independent draws: pass@k);
* ``switch`` — the cascade; its attempts depend on earlier verdicts, so its cells report
  ``proved_within_budget``, not pass@k. Compare it with ``always`` at the same ``samples``
  (the same attempt budget): problems proved within the budget against tokens.

Attempt ``a`` of problem ``d`` is sampled with seed :func:`harness.variant.sample_seed`
``(seed, d, a)`` in every mode: the cascade's round 2 continues the attempt index at ``k1``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Round:
    """One generation round: attempts ``first .. first + count - 1`` per problem, with or
    without CoT, over every problem or only those not yet proved."""

    cot: bool
    first: int
    count: int
    unproved_only: bool


def rounds(mode: str, samples: int, k1: int | None = None) -> list[Round]:
    """The rounds of a cell (see the module docstring).

    Raises:
        ValueError: an unknown mode, or ``k1`` outside ``1 .. samples - 1`` for ``switch``.
    """
    if mode == "never":
        return [Round(False, 0, samples, False)]
    if mode == "always":
        return [Round(True, 0, samples, False)]
    if mode == "switch":
        if k1 is None or not 1 <= k1 < samples:
            raise ValueError(f"cot_switch switch needs 1 <= k1 < samples ({samples}), got k1={k1}")
        return [Round(False, 0, k1, False), Round(True, k1, samples - k1, True)]
    raise ValueError(f"unknown cot_switch mode {mode!r}")
