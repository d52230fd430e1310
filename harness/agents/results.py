"""τ²'s results JSON → harness sample rows; pass^k; attribution of served requests to tasks.

One sample row is one τ² simulation (a task × trial). τ² sends no task id to the server, so
the cell runner runs one simulation per subprocess, sequentially, and attributes the server's
requests to it by time window (:func:`attribute`): requests of the variant's served model
that started inside the simulation's window. The user simulator and the judge are served
under their own model names, so their tokens and time never count as the variant's.

Rewards: τ²'s ``reward`` is stored as ``reward`` except when the task's reward basis needs the
natural-language judge and no judge was configured; then ``reward`` is null and the DB check
goes to ``reward_db_only`` (:data:`harness.agents.tau2_entry.SKIPPED_NOTE`). Success is
``reward`` within 1e-6 of 1 (τ²'s rule). A simulation that τ² skipped after an exception, one
ending in ``infrastructure_error`` (upstream τ² drops those from its averages while exiting 0)
or one whose subprocess produced nothing counts as a failure (reward 0) and is flagged
``infra_error``; its duration, generation time and energy are null unless they were measured
(never 0 for unknown). A cell whose simulations are all infrastructure errors fails
(:func:`check_not_all_infra`).

Side effects: τ²'s environment evaluator compares the final database with the one the gold
actions produce and records ``reward_info.db_check.db_match`` even when the task's reward basis
ignores the database (e.g. ``["COMMUNICATE"]`` or ``["ACTION"]``). Each simulation keeps it as
``db_match`` (null when τ² computed none: a run ended by ``max_steps`` or an error, where τ²
scores 0 without evaluating) and a cell counts the false ones (:func:`db_mismatch_count`); the
reward stays τ²'s own.
"""

from __future__ import annotations

import json
from math import comb
from pathlib import Path
from typing import Any

SUCCESS_TOL = 1e-6
STOP_REASONS = ("agent_stop", "user_stop")
INFRA_REASON = "infrastructure_error"
SKIPPED_NOTE = "harness_nl_assertions_skipped"  # same string as tau2_entry.SKIPPED_NOTE


def load(path: str | Path) -> dict[str, Any]:
    """Read a τ² results file (``Results``: ``info``, ``tasks``, ``simulations``)."""
    return json.loads(Path(path).read_text())


def scrub_keys(path: str | Path) -> None:
    """Remove API keys τ² copies into its results file (``info.*_info.llm_args.api_key``)."""
    path = Path(path)
    data = json.loads(path.read_text())
    changed = False
    for part in ("agent_info", "user_info"):
        args = ((data.get("info") or {}).get(part) or {}).get("llm_args") or {}
        if "api_key" in args:
            args["api_key"] = "<removed>"
            changed = True
    if changed:
        path.write_text(json.dumps(data, indent=2))


def _usage(messages: list[dict], role: str) -> tuple[int, int, int]:
    """(prompt tokens, completion tokens, messages) of ``role``'s LLM turns, from ``usage``."""
    prompt = completion = n = 0
    for m in messages:
        if m.get("role") != role:
            continue
        n += 1
        usage = m.get("usage") or {}
        prompt += int(usage.get("prompt_tokens") or 0)
        completion += int(usage.get("completion_tokens") or 0)
    return prompt, completion, n


def simulation_row(sim: dict, task: dict | None, judged: bool) -> dict[str, Any]:
    """The harness view of one τ² simulation (task and trial, reward, breakdown, tokens).

    Args:
        sim: one entry of ``simulations``.
        task: the task definition from ``tasks`` (for its reward basis), or ``None``.
        judged: a judge was configured for natural-language assertions.
    """
    info = sim.get("reward_info") or {}
    reason = sim.get("termination_reason") or INFRA_REASON
    infra = bool(sim.get("skipped")) or reason == INFRA_REASON
    basis = ((task or {}).get("evaluation_criteria") or {}).get("reward_basis") or ["DB", "COMMUNICATE"]
    nl_skipped = bool((info.get("info") or {}).get(SKIPPED_NOTE)) or ("NL_ASSERTION" in basis and not judged)
    reward = info.get("reward")
    reward = 0.0 if reward is None or infra else float(reward)
    db = (info.get("db_check") or {}).get("db_reward")
    db_only = None
    if nl_skipped:
        # the DB check alone; a run that ended before scoring has none: 0, like τ²'s reward
        db_only = float(db) if db is not None and reason in STOP_REASONS and not infra else 0.0
        reward = None
    messages = sim.get("messages") or []
    a_in, a_out, a_n = _usage(messages, "assistant")
    u_in, u_out, u_n = _usage(messages, "user")
    return {
        "sim_id": sim.get("id"),
        "task_id": str(sim.get("task_id")),
        "trial": int(sim.get("trial") or 0),
        "reward": reward,
        "reward_db_only": db_only,
        "success": None if reward is None else reward >= 1 - SUCCESS_TOL,
        "reward_breakdown": info.get("reward_breakdown"),
        "reward_basis": basis,
        "db_match": _db_match(info, infra),
        "termination_reason": INFRA_REASON if reason not in STOP_REASONS and infra else reason,
        "infra_error": infra,
        # τ²'s duration; unknown (null, never 0) when it recorded none or a lost run recorded 0
        "duration_s": _duration(sim.get("duration"), infra),
        "n_messages": len(messages),
        "agent_messages": a_n,
        "user_messages": u_n,
        "agent_input_tokens": a_in,
        "agent_output_tokens": a_out,
        "user_input_tokens": u_in,
        "user_output_tokens": u_out,
        "note": (info.get("info") or {}).get("note"),
    }


def _db_match(info: dict, infra: bool) -> bool | None:
    """τ²'s ``db_check.db_match`` (final DB == gold DB); None when it computed none or the
    simulation was lost to an infrastructure error (its DB says nothing about the variant)."""
    value = (info.get("db_check") or {}).get("db_match")
    return None if value is None or infra else bool(value)


def db_mismatch_count(rows: list[dict[str, Any]]) -> int:
    """Simulations whose final database differs from the gold one (``db_match`` false); a
    simulation without a DB check (``db_match`` null) is not counted."""
    return sum(r.get("db_match") is False for r in rows)


def _duration(value, infra: bool) -> float | None:
    if value is None or (infra and not value):
        return None
    return float(value)


def rows_from_results(results: dict, judged: bool) -> list[dict[str, Any]]:
    """:func:`simulation_row` for every simulation of a τ² results object."""
    tasks = {str(t["id"]): t for t in results.get("tasks", [])}
    return [simulation_row(s, tasks.get(str(s.get("task_id"))), judged) for s in results.get("simulations", [])]


def missing_row(task_id: str, trial: int, error: str) -> dict[str, Any]:
    """A simulation τ² did not produce (the subprocess failed): a failure, flagged."""
    return {
        "sim_id": None, "task_id": task_id, "trial": trial, "reward": 0.0, "reward_db_only": None,
        "success": False, "reward_breakdown": None, "reward_basis": None, "db_match": None,
        "termination_reason": INFRA_REASON, "infra_error": True, "duration_s": None, "n_messages": 0,
        "agent_messages": 0, "user_messages": 0, "agent_input_tokens": 0, "agent_output_tokens": 0,
        "user_input_tokens": 0, "user_output_tokens": 0, "note": error[:2000],
    }


def check_not_all_infra(rows: list[dict[str, Any]], log_dir: str | Path | None = None) -> None:
    """Raise when every simulation of a cell is an infrastructure error: such a cell measured
    nothing about the variant (its 0 % would be the endpoints' failure, not the model's).

    Raises:
        RuntimeError: naming the termination reasons and the first error text.
    """
    if not rows or not all(r.get("infra_error") for r in rows):
        return
    reasons: dict[str, int] = {}
    for r in rows:
        reasons[r["termination_reason"]] = reasons.get(r["termination_reason"], 0) + 1
    first = next((r.get("note") for r in rows if r.get("note")), None) or "no error text"
    first = " ".join(str(first).split())[-600:]
    where = f"; τ² logs in {log_dir}" if log_dir else ""
    raise RuntimeError(
        f"all {len(rows)} τ² simulation(s) failed with infrastructure errors (termination {reasons}): "
        f"nothing measured{where}; first error: {first}"
    )


def pass_hat_k(successes: dict[str, list[bool]], k: int) -> float | None:
    """τ²'s pass^k: mean over tasks of ``C(c, k) / C(n, k)`` (n trials, c successes); tasks
    with fewer than ``k`` trials are left out; ``None`` when none has ``k``."""
    values = [comb(sum(s), k) / comb(len(s), k) for s in successes.values() if len(s) >= k]
    return sum(values) / len(values) if values else None


def attribute(log, served_model: str, t0: float, t1: float) -> dict[str, Any]:
    """Sum the ``served_model`` requests that started in ``[t0, t1]`` (perf_counter clock)."""
    records = [r for r in log.records(served_model, t0, t1)]
    ok = [r for r in records if r.status == 200]
    energies = [r.energy_j for r in ok]
    return {
        "requests": len(records),
        "failed_requests": len(records) - len(ok),
        "prompt_tokens": sum(r.prompt_tokens for r in ok),
        "completion_tokens": sum(r.completion_tokens for r in ok),
        "generation_time_s": sum(r.latency_s for r in ok),
        "ttfts_s": [r.ttft_s for r in ok if r.ttft_s is not None],
        "length_stops": sum(r.finish_reason == "length" for r in ok),
        "truncated_turns": sum(r.truncated_turns for r in ok),
        "energy_j": sum(energies) if ok and all(e is not None for e in energies) else None,
    }
