"""Per-cell figures of a proving cell, from its attempt rows (pure functions).

* ``pass_at_k_json`` — for every ``k <= n``: the mean over problems of the unbiased estimator
  ``1 - C(n-c, k)/C(n, k)`` (Chen et al. 2021, arXiv 2107.03374; :func:`harness.core.stats.pass_at_k`),
  0 when no attempt was proved, never a plug-in ``1 - (1 - c/n)^k``; ``pass_at_<k>`` columns
  for the suite's ``report_k``; ``pass_at_1`` is also the cell's ``accuracy``, its 95 %
  interval a percentile bootstrap over *problems* (each problem's ``c/n``), not attempts.
* A cascade (``cot_switch: switch``) makes dependent attempts: its cells report no pass@k,
  ``proved_within_budget`` (share of problems proved within the attempt budget) is their
  ``accuracy`` instead (bootstrap over problems too).
* ``proved`` (problems with a proved attempt), ``tokens_per_proved`` (all attempts' output
  tokens / problems proved: EconProver's token-level sampling cost), ``energy_per_proved_j``,
  the checker's totals (time, batches, status counts) and the CoT counters.
"""

from __future__ import annotations

import json
from collections import Counter

from harness.core.stats import bootstrap_mean_ci, pass_at_k

PROVED = "proved"


def problem_counts(samples: list[dict]) -> dict[int, tuple[int, int]]:
    """``doc_id → (attempts n, proved attempts c)``."""
    out: dict[int, list[int]] = {}
    for s in samples:
        entry = out.setdefault(int(s["doc_id"]), [0, 0])
        entry[0] += 1
        entry[1] += int(s.get("check_status") == PROVED)
    return {d: (n, c) for d, (n, c) in out.items()}


def pass_at_k_means(counts: dict[int, tuple[int, int]], n: int) -> dict[int, float | None]:
    """``k → mean pass@k over problems`` for ``k = 1..n`` (``None`` where a problem has fewer
    than ``k`` attempts)."""
    out: dict[int, float | None] = {}
    for k in range(1, n + 1):
        values = [pass_at_k(ni, ci, k) for ni, ci in counts.values()]
        out[k] = None if not values or any(v is None for v in values) else sum(values) / len(values)
    return out


def prove_columns(samples: list[dict], n: int, report_k: list[int], cascade: bool,
                  energy_j: float | None, seed: int = 0) -> dict:
    """The proving cell columns (schema names) from its attempt rows.

    Args:
        samples: one row per attempt (``doc_id``, ``check_status``, ``check_time_s``,
            ``output_tokens``, ``counters_json`` with ``cot``).
        n: attempts per problem (the budget of a cascade).
        report_k: ``k`` values with their own ``pass_at_<k>`` column.
        cascade: the attempts form a cascade (no pass@k).
        energy_j: the generation windows' energy (``None`` when unknown).
    """
    counts = problem_counts(samples)
    problems = len(counts)
    proved = sum(1 for _, c in counts.values() if c > 0)
    tokens = sum(int(s.get("output_tokens") or 0) for s in samples)
    statuses = Counter(s.get("check_status") for s in samples)
    cot = [s for s in samples if json.loads(s.get("counters_json") or "{}").get("cot")]
    direct = [s for s in samples if not json.loads(s.get("counters_json") or "{}").get("cot")]
    out = {
        "problems": problems,
        "proved": proved,
        "tokens_per_proved": tokens / proved if proved else None,
        "energy_per_proved_j": energy_j / proved if energy_j is not None and proved else None,
        "check_time_s": sum(float(s.get("check_time_s") or 0.0) for s in samples),
        "check_timeouts": statuses.get("timeout", 0),
        "check_errors": statuses.get("error", 0),
        "check_status_json": json.dumps(dict(sorted((k, v) for k, v in statuses.items() if k)), sort_keys=True),
        "counter_cot_attempts": float(len(cot)),
        "counter_cot_output_tokens": float(sum(int(s.get("output_tokens") or 0) for s in cot)),
        "counter_direct_output_tokens": float(sum(int(s.get("output_tokens") or 0) for s in direct)),
    }
    if cascade:
        shares = [1.0 if c > 0 else 0.0 for _, c in counts.values()]
        out.update({"pass_at_k_json": None, "pass_at_1": None, "proved_within_budget": proved / problems if problems else None})
        out.update({f"pass_at_{k}": None for k in report_k if k != 1})
    else:
        table = pass_at_k_means(counts, n)
        shares = [c / ni for ni, c in counts.values()]
        out.update({"pass_at_k_json": json.dumps({str(k): v for k, v in table.items()}),
                    "pass_at_1": table.get(1), "proved_within_budget": None})
        out.update({f"pass_at_{k}": table.get(k) for k in report_k if k != 1})
    accuracy = sum(shares) / len(shares) if shares else None
    low, high = bootstrap_mean_ci(shares, seed=seed) if shares else (None, None)
    out.update({"accuracy": accuracy, "accuracy_ci95_low": low, "accuracy_ci95_high": high})
    return out
