"""The ``agent`` cell runner: τ²-bench against a variant served on loopback.

Per cell (a variant of a model on a τ² domain): start a :class:`harness.serve.server.ServerThread`
serving the variant (and, when they are local, the user simulator and the NL-assertion judge,
each under its own model name), then, inside the cell's telemetry window, run τ² once per
(task, trial) as a subprocess with concurrency 1, each simulation inside its own telemetry
window. The server's request log is cut by that window to attribute the variant's requests
(tokens, generation time) to the simulation; the variant's energy for the simulation is the
window's measured energy × the variant's share of the window's time (``energy_attributed``).
The user simulator's and judge's requests are excluded from the variant's figures.

Same :class:`harness.core.cell.CellKind` contract, executors, resume and results store as the
evaluation and training cells. τ²'s raw results and logs go to a temporary folder and come
back in the outcome's ``files`` (``tau2/<cell_hash>/…``), which the driver writes. Sample rows hold one simulation each (``doc_id`` = task index ×
trials + trial); ``correct`` is τ²'s success (reward within 1e-6 of 1), so the gate's paired
tests and the dashboard's sample view work unchanged.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.core.cell import Cell, CellOutcome
from harness.core.rows import energy_ratios, mean, sample_row

VARIANT_NAME = "variant"
USER_NAME = "user-simulator"
JUDGE_NAME = "judge"
LOCAL_KEY = "harness-local"


def check_servable(adapter) -> None:
    """Refuse an adapter whose variant must be prepared on a task before it wraps
    (:meth:`harness.adapters.base.Adapter.needs_preparation`, e.g. think_budget modes medium
    and low, whose budgets come from a calibration on a task's docs).

    Agent cells refuse such variants rather than calibrate them: their workload is τ²
    conversations, which hold no task docs to calibrate on, and calibrating on another task
    (e.g. GSM8K) would tune the budget on a different workload, so the cell would measure a
    technique set up elsewhere. Suite validation calls this for every ``agents:`` variant and
    local user simulator / judge (a ``SuiteError`` naming the key, before anything loads).
    Agent cells can use think_budget's explicit ``max_reasoning_tokens`` or modes high and
    no_thinking, served with their system prompt and prefill as evaluated.

    Raises:
        ValueError: the adapter needs preparation (the message says why and what to use instead).
    """
    reason = adapter.needs_preparation()
    if reason:
        raise ValueError(
            f"{reason}, and agent cells have no task to calibrate on (τ² conversations); use a variant "
            "that needs no calibration (e.g. think_budget with max_reasoning_tokens, or mode high or no_thinking)"
        )


def serve_variant(variant):
    """A :class:`harness.serve.protocol.ChatBackend` for a wrapped variant: the variant itself
    when it already is one (scripted test fixtures), else the shared decode loop's backend,
    which serves the variant as evaluated (decode policy and prompt transform: system prompt,
    prefill; :meth:`harness.serve.backend.VariantBackend.from_variant`)."""
    if callable(getattr(variant, "complete", None)):
        return variant
    from harness.serve.backend import VariantBackend

    return VariantBackend.from_variant(variant)


def resolve_task_ids(agent: dict) -> list[str]:
    """The cell's task ids: ``task_ids`` as given, else the split's first ``num_tasks`` (all).

    Reads the domain's task file and the split file beside it (``split_tasks.json``), never τ².

    Raises:
        ValueError: unknown or duplicate task ids, unknown split, ``num_tasks`` above what the
            split holds.
        OSError: the task file is missing or unreadable.
    """
    from harness.agents.tau2_run import domain_tasks, tasks_file

    domain = agent["domain"]
    tasks = [str(t["id"]) for t in domain_tasks(domain, agent.get("data_dir"))]
    split = agent.get("split") or "base"
    split_path = tasks_file(domain, agent.get("data_dir")).parent / "split_tasks.json"
    splits = json.loads(split_path.read_text()) if split_path.is_file() else {"base": tasks}
    if split not in splits:
        raise ValueError(f"τ² domain {domain}: unknown split {split!r} (have {sorted(splits)})")
    if agent.get("task_ids"):
        ids = [str(t) for t in agent["task_ids"]]
        dupes = sorted({t for t in ids if ids.count(t) > 1})
        if dupes:
            raise ValueError(f"τ² domain {domain}: duplicate task id(s) {dupes}")
        known = set(tasks)
        missing = [t for t in ids if t not in known]
        if missing:
            raise ValueError(f"τ² domain {domain}: unknown task id(s) {missing} (not in {tasks_file(domain, agent.get('data_dir')).name})")
        return ids
    wanted = {str(t) for t in splits[split]}
    tasks = [t for t in tasks if t in wanted]
    n = agent.get("num_tasks")
    if n and n > len(tasks):
        raise ValueError(f"τ² domain {domain}: num_tasks {n} but split {split!r} has {len(tasks)} task(s)")
    return tasks[:n] if n else tasks


class AgentRunner:
    """Loading, input checks and running of agent cells (the registered kind,
    :class:`harness.kinds.agents.AgentKind`, adds the suite section)."""

    def __init__(self) -> None:
        self._extra_bases: dict[tuple[str, str, str], Any] = {}

    def load_base(self, ref: str, dtype: str, device: str):
        """The language model the variants wrap (same loader as evaluation cells)."""
        from harness import models

        return models.load(ref, dtype=dtype, device=device)

    def check_inputs(self, cells: list[Cell]) -> None:
        """τ² installed, every domain's task file readable, every task id known.

        Raises:
            DataError: the ``agents`` extra is not installed, missing data, unknown task ids.
        """
        from harness.agents.tau2_run import Tau2Unavailable, tau2_package_dir
        from harness.tasks import DataError

        try:
            tau2_package_dir()
        except Tau2Unavailable as exc:
            raise DataError(str(exc)) from None
        for cell in cells:
            try:
                ids = resolve_task_ids(cell.settings)
            except (OSError, ValueError) as exc:
                raise DataError(f"{cell.task}: {exc}") from None
            if not ids:
                raise DataError(f"{cell.task}: no tasks selected")

    # -- helpers -------------------------------------------------------------------------
    def _local_backend(self, llm: dict, cell: Cell, base, max_tokens: int):
        from harness.adapters import ADAPTERS

        if llm["model"] == cell.model_ref:
            model = base
        else:
            from harness import models

            key = (llm["model"], cell.variant.dtype, getattr(base, "device", "cpu"))
            if key not in self._extra_bases:
                self._extra_bases[key] = models.load(llm["model"], dtype=key[1], device=key[2])
            model = self._extra_bases[key]
        adapter = ADAPTERS.get(llm["adapter"])(llm.get("params") or {})
        return serve_variant(adapter.wrap(model, batch_size=1, max_new_tokens=max_tokens))

    def run(self, cell: Cell, base, telemetry, on_progress=None, files=None) -> CellOutcome:
        """Run τ² on every (task, trial) of the cell, in a temporary folder whose files come
        back in the outcome (``tau2/<cell_hash>/<name>``)."""
        with tempfile.TemporaryDirectory(prefix="harness-tau2-") as tmp:
            outcome = self._run(cell, base, telemetry, on_progress, Path(tmp) / "tau2" / cell.cell_hash)
            root = Path(tmp)
            outcome.files = {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}
        return outcome

    def _run(self, cell: Cell, base, telemetry, on_progress, out_dir: Path) -> CellOutcome:
        import os

        from harness.adapters import ADAPTERS
        from harness.agents import results as res
        from harness.agents import tau2_run
        from harness.serve.app import create_app
        from harness.serve.protocol import RequestLog
        from harness.serve.server import ServerThread

        cfg = cell.settings
        max_tokens = cfg["max_tokens"]
        task_ids = resolve_task_ids(cfg)
        trials = cfg["trials"]
        out_dir.mkdir(parents=True, exist_ok=True)
        variant = ADAPTERS.get(cell.variant.adapter)(cell.params).wrap(base, batch_size=1, max_new_tokens=max_tokens)
        backends = {VARIANT_NAME: serve_variant(variant)}
        user, judge = cfg["user"], cfg.get("judge")
        if user["llm"] is None:
            backends[USER_NAME] = self._local_backend(user, cell, base, max_tokens)
        if judge is not None and judge["llm"] is None:
            backends[JUDGE_NAME] = self._local_backend(judge, cell, base, max_tokens)
        log = RequestLog(out_dir / "requests.jsonl")
        app = create_app(backends, log, api_key=LOCAL_KEY)
        rows: list[dict[str, Any]] = []
        n_total = len(task_ids) * trials
        with ServerThread(app) as server, telemetry.window(cell.cell_hash) as cell_window:
            agent_ep = tau2_run.LLMEndpoint(f"openai/{VARIANT_NAME}", server.base_url, LOCAL_KEY)
            if user["llm"] is None:
                user_ep = tau2_run.LLMEndpoint(f"openai/{USER_NAME}", server.base_url, LOCAL_KEY)
            else:
                key = os.environ.get(user["api_key_env"]) if user.get("api_key_env") else None
                user_ep = tau2_run.LLMEndpoint(user["llm"], user.get("api_base"), key)
            if judge is None:
                judge_model, openai_base, judge_key = None, server.base_url, LOCAL_KEY
            elif judge["llm"] is None:
                judge_model, openai_base, judge_key = f"openai/{JUDGE_NAME}", server.base_url, LOCAL_KEY
            else:
                judge_model = judge["llm"]
                openai_base = judge.get("api_base") or server.base_url
                judge_key = os.environ.get(judge["api_key_env"]) if judge.get("api_key_env") else None
            env = tau2_run.environment(openai_base, judge_model, cfg.get("data_dir"), judge_key, agent_ep, user_ep)
            env["PYTHONPATH"] = os.pathsep.join(
                [str(Path(__file__).resolve().parents[2]), *filter(None, [env.get("PYTHONPATH")])]
            )
            for i, task_id in enumerate(task_ids):
                for trial in range(trials):
                    name = tau2_run.save_name(cell.cell_hash, task_id, trial)
                    cmd = tau2_run.command(
                        cfg["domain"], task_id, agent_ep, user_ep, max_steps=cfg["max_steps"],
                        max_tokens=max_tokens, seed=cell.seed + trial, save_to=name, results_dir=out_dir,
                        max_errors=cfg["max_errors"],
                    )
                    key = f"{cell.cell_hash}/{i}/{trial}"
                    with telemetry.window(key) as window:
                        t0 = time.perf_counter()
                        code = tau2_run.run(cmd, env, out_dir, cfg.get("timeout_s"), out_dir / f"{name}.log")
                        t1 = time.perf_counter()
                    rows.append(self._row(res, out_dir, name, task_id, trial, code, judge is not None,
                                          log, t0, t1, window.result))
                    rows[-1]["doc_id"] = i * trials + trial
                    if on_progress:
                        on_progress(len(rows), n_total)
        res.check_not_all_infra(rows, out_dir)
        n_infra = sum(bool(r["infra_error"]) for r in rows)
        if n_infra:
            print(f"warning: {cell.variant.name} · {cell.task}: {n_infra} of {len(rows)} τ² simulation(s) were "
                  f"infrastructure errors (counted as failures); τ² logs in {out_dir}", flush=True)
        return CellOutcome(
            cell_row=self._cell_row(res, cell, rows, cell_window.result, variant, backends, cfg),
            sample_rows=[self._sample(cell, r) for r in rows],
        )

    # -- rows ----------------------------------------------------------------------------
    @staticmethod
    def _row(res, out_dir: Path, name: str, task_id: str, trial: int, code: int, judged: bool,
             log, t0: float, t1: float, window) -> dict[str, Any]:
        path = out_dir / f"{name}.json"
        sims = []
        if path.is_file():
            try:
                res.scrub_keys(path)
                sims = res.rows_from_results(res.load(path), judged)
            except (ValueError, KeyError) as exc:
                sims, code = [], f"unreadable results: {exc}"
        if len(sims) != 1:
            tail = (out_dir / f"{name}.log").read_text(errors="replace")[-1500:] if (out_dir / f"{name}.log").is_file() else ""
            row = res.missing_row(task_id, trial, f"τ² exit {code}, {len(sims)} simulation(s): {tail}")
        else:
            row = sims[0]
            row["trial"] = trial
            if row["infra_error"] and not row.get("note"):
                row["note"] = _first_error(out_dir / f"{name}.log")
        used = res.attribute(log, VARIANT_NAME, t0, t1)
        user = res.attribute(log, USER_NAME, t0, t1)
        judge = res.attribute(log, JUDGE_NAME, t0, t1)
        wall = t1 - t0
        energy = used["energy_j"]
        if energy is None and window.energy_j is not None and wall > 0:
            energy = window.energy_j * min(1.0, used["generation_time_s"] / wall)
        gen_time = used["generation_time_s"]
        if row["infra_error"] and used["requests"] == used["failed_requests"]:
            # lost before the variant answered anything: its time and energy were not measured
            gen_time, energy = None, None
        row.update(
            save_name=name,
            exit_code=code,
            wall_s=wall,
            agent_requests=used["requests"],
            agent_failed_requests=used["failed_requests"],
            served_prompt_tokens=used["prompt_tokens"],
            served_completion_tokens=used["completion_tokens"],
            agent_generation_time_s=gen_time,
            agent_ttft_s=used["ttfts_s"][0] if used["ttfts_s"] else None,
            length_stops=used["length_stops"],
            truncated_turns=used["truncated_turns"],
            user_requests=user["requests"],
            judge_requests=judge["requests"],
            energy_j=energy,
            energy_source=window.energy_source,
            window_energy_j=window.energy_j,
        )
        return row

    @staticmethod
    def _sample(cell: Cell, r: dict) -> dict[str, Any]:
        text = f"tau2/{cell.settings['domain']}/{r['task_id']}#trial{r['trial']}"
        success = r["success"]
        return sample_row(cell, r["doc_id"], text) | {
            "output_text": r.get("note"),
            "extracted_answer": r["termination_reason"],
            "reference": None,
            "correct": None if success is None else float(success),
            "grade_reason": f"τ² reward {r['reward']}" if r["reward"] is not None else f"reward_db_only {r['reward_db_only']}",
            "input_tokens": r["agent_input_tokens"],
            "output_tokens": r["agent_output_tokens"],
            "finish_reason": "error" if r["infra_error"] else ("length" if r["termination_reason"] == "max_steps" else "stop"),
            "latency_s": r["duration_s"],
            "ttft_s": r["agent_ttft_s"],
            "batch_size": 1,
            "counters_json": json.dumps({"agent_requests": r["agent_requests"], "length_stops": r["length_stops"],
                                         "truncated_turns": r["truncated_turns"]}, sort_keys=True),
            # agent block (schema 1.3)
            "agent_task_id": r["task_id"],
            "agent_trial": r["trial"],
            "reward": r["reward"],
            "reward_db_only": r["reward_db_only"],
            "reward_breakdown_json": json.dumps(r["reward_breakdown"], sort_keys=True) if r["reward_breakdown"] is not None else None,
            "db_match": r.get("db_match"),  # τ²'s DB check, kept even where the reward ignores the DB
            "termination_reason": r["termination_reason"],
            "infra_error": r["infra_error"],
            "user_input_tokens": r["user_input_tokens"],
            "user_output_tokens": r["user_output_tokens"],
            "duration_s": r["duration_s"],
            "agent_generation_time_s": r["agent_generation_time_s"],
            "energy_j": r["energy_j"],
            "energy_source": r["energy_source"],
            "energy_attributed": True,
        }

    @staticmethod
    def _cell_row(res, cell: Cell, rows: list[dict], window, variant, backends, cfg) -> dict[str, Any]:
        from harness.models import param_bytes
        from harness.core.stats import accuracy_with_ci, percentile

        n = len(rows)
        scored = [r for r in rows if r["success"] is not None]
        succ = [float(r["success"]) for r in scored]
        acc, low, high = accuracy_with_ci(succ)
        by_task: dict[str, list[bool]] = {}
        for r in scored:
            by_task.setdefault(r["task_id"], []).append(bool(r["success"]))
        pass_k = {str(k): res.pass_hat_k(by_task, k) for k in range(1, cfg["trials"] + 1)}
        agent_out = sum(r["agent_output_tokens"] for r in rows)
        agent_tok = sum(r["agent_input_tokens"] + r["agent_output_tokens"] for r in rows)
        user_tok = sum(r["user_input_tokens"] + r["user_output_tokens"] for r in rows)
        n_success = sum(succ)
        energies = [r["energy_j"] for r in rows]
        energy = sum(energies) if rows and all(e is not None for e in energies) else None
        gen_times = [r["agent_generation_time_s"] for r in rows if r["agent_generation_time_s"] is not None]
        gen_time = sum(gen_times) if gen_times else None
        ttfts = [r["agent_ttft_s"] for r in rows if r["agent_ttft_s"] is not None]
        durations = [r["duration_s"] for r in rows if r["duration_s"] is not None]
        db_only = [r["reward_db_only"] for r in rows if r["reward_db_only"] is not None]
        cols = window.as_columns()
        reasons: dict[str, int] = {}
        for r in rows:
            reasons[r["termination_reason"]] = reasons.get(r["termination_reason"], 0) + 1
        model = getattr(variant, "model", None)
        return {
            **cols,
            "energy_j": energy,
            "energy_attributed": True,
            "avg_power_w": None,
            "n": n,
            "n_correct": n_success,
            "accuracy": acc,
            "accuracy_ci95_low": low,
            "accuracy_ci95_high": high,
            "output_tokens_mean": agent_out / n if n else None,
            "output_tokens_total": agent_out,
            "input_tokens_mean": mean([r["agent_input_tokens"] for r in rows]),
            "truncation_rate": sum(r["termination_reason"] == "max_steps" for r in rows) / n if n else None,
            "latency_p50_s": percentile(durations, 50),
            "latency_p90_s": percentile(durations, 90),
            "latency_p99_s": percentile(durations, 99),
            "ttft_p50_s": percentile(ttfts, 50),  # of the samples' ttft_s, as cells.cell_metrics
            "tpot_p50_s": None,  # samples carry no tpot_s
            "generation_time_s": gen_time,
            "throughput_tok_per_s": agent_out / gen_time if gen_time else None,
            "tokens_per_correct": agent_tok / n_success if n_success else None,
            "param_bytes": param_bytes(model) if model is not None else None,
            **energy_ratios(energy, n, n_success, agent_out),
            # agent block (schema 1.3)
            "agent_domain": cfg["domain"],
            "agent_tasks": len(by_task) if by_task else len({r["task_id"] for r in rows}),
            "agent_trials": cfg["trials"],
            "agent_max_steps": cfg["max_steps"],
            "success_rate": acc,
            "pass_hat_1": pass_k.get("1"),
            "pass_hat_k_json": json.dumps(pass_k, sort_keys=True),
            "reward_mean": mean([r["reward"] for r in rows if r["reward"] is not None]),
            "reward_db_only_mean": mean(db_only) if db_only else None,
            "agent_tokens_per_task": agent_tok / n if n else None,
            "agent_tokens_per_success": agent_tok / n_success if n_success else None,
            "user_tokens_per_task": user_tok / n if n else None,
            "max_steps_rate": sum(r["termination_reason"] == "max_steps" for r in rows) / n if n else None,
            "infra_error_count": sum(bool(r["infra_error"]) for r in rows),
            "db_mismatch_count": res.db_mismatch_count(rows),
            "termination_json": json.dumps(reasons, sort_keys=True),
            "user_simulator": _label(cfg["user"]),
            "judge_model": _label(cfg["judge"]) if cfg.get("judge") else None,
            "tau2_version": cell.task_version.split(":")[1] if cell.task_version.count(":") >= 2 else None,
            "tau2_data_version": cell.task_version,
        }


def _first_error(log_path: Path) -> str | None:
    """Why τ² lost a simulation: its first "Error running task" line in the log (else its
    first ``ERROR`` line), or ``None``."""
    if not log_path.is_file():
        return None
    errors = [line.split(" - ", 1)[-1].strip() for line in log_path.read_text(errors="replace").splitlines()
              if "| ERROR" in line]
    running = [e for e in errors if e.startswith("Error running task")]
    found = running or errors
    return found[0][:2000] if found else None


def _label(llm: dict) -> str:
    return f"local:{llm['model']}/{llm['adapter']}" if llm.get("llm") is None else f"{llm['llm']}@{llm.get('api_base') or 'provider'}"
