"""The prove kind end to end without a model's luck: a scripted test model that emits reference
proofs for some problems and garbage for others runs through suite validation, the prove kind
(rounds, sampling seeds, the real Metamath checker), the store, resume, the summary and the gate.
Also: pass@k (Chen et al. 2021) as a pure function, the section's validation and cell identity."""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction

import pytest
from conftest import SHARED_DATA
from rich.console import Console
from test_prove_metamath import require_metamath

from harness.adapters.base import ADAPTERS, Adapter, AdapterParams
from harness.config.suite import SuiteError, expand, parse
from harness.core.stats import pass_at_k
from harness.generation import DecodePolicy
from harness.kinds.prove.metrics import pass_at_k_means, problem_counts, prove_columns
from harness.results import read_cells, read_samples, summary_table
from harness.tasks.minif2f import metamath_prompt
from harness.tasks.proving import PROVING_TASKS, ProvingTask, get_proving_task
from harness.variant import GenerationVariant, RequestStats


# --- pass@k --------------------------------------------------------------------------------------
def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(4, 2, 2) == 5 / 6  # exactly: 1 - C(2,2)/C(4,2)
    assert pass_at_k(4, 0, 3) == 0.0 and pass_at_k(4, 4, 1) == 1.0 and pass_at_k(4, 1, 1) == 0.25
    assert pass_at_k(4, 2, 5) is None  # defined for k <= n only
    # equals the share of k-subsets of the n attempts holding a correct one (its definition)
    for n, c, k in [(5, 2, 3), (8, 1, 4), (7, 3, 2)]:
        subsets = list(itertools.combinations([1] * c + [0] * (n - c), k))
        assert pass_at_k(n, c, k) == float(Fraction(sum(any(s) for s in subsets), len(subsets)))
    assert pass_at_k(4, 2, 2) != 1 - (1 - 2 / 4) ** 2  # never the biased plug-in
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_cell_figures_average_over_problems_and_a_cascade_reports_no_pass_at_k():
    rows = [{"doc_id": d, "sample": a, "check_status": "proved" if ok else "failed", "output_tokens": 10,
             "counters_json": json.dumps({"cot": 0})}
            for d, oks in enumerate([[1, 0, 1, 0], [0, 0, 0, 0]]) for a, ok in enumerate(oks)]
    assert problem_counts(rows) == {0: (4, 2), 1: (4, 0)}
    assert pass_at_k_means(problem_counts(rows), 4)[2] == (5 / 6 + 0) / 2
    cols = prove_columns(rows, 4, [1, 2], cascade=False, energy_j=8.0)
    assert (cols["pass_at_1"], cols["accuracy"], cols["proved"], cols["tokens_per_proved"]) == (0.25, 0.25, 1, 80.0)
    assert cols["energy_per_proved_j"] == 8.0 and json.loads(cols["pass_at_k_json"])["4"] == 0.5
    cascade = prove_columns(rows, 4, [1, 2], cascade=True, energy_j=None)
    assert cascade["pass_at_1"] is None and cascade["pass_at_2"] is None and cascade["proved_within_budget"] == 0.5
    nothing = prove_columns([{**r, "check_status": "timeout"} for r in rows], 4, [1], cascade=False, energy_j=1.0)
    assert nothing["pass_at_1"] == 0.0 and nothing["proved"] == 0 and nothing["tokens_per_proved"] is None
    assert nothing["check_timeouts"] == 8


# --- the section ---------------------------------------------------------------------------------
SECTION = {
    "name": "p",
    "prove": {
        "models": ["test/scripted"],
        "tasks": ["minif2f_metamath"],
        "defaults": {"limit": 2, "samples": 4, "temperature": 0.8, "report_k": [1, 2, 4]},
        "variants": [{"name": "baseline", "adapter": "baseline"},
                     {"name": "switch", "adapter": "baseline", "cot_switch": {"mode": "switch", "k1": 2}}],
    },
}


def _with(path: str, value):
    data = json.loads(json.dumps(SECTION))
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    node[keys[-1]] = value
    return data


@pytest.mark.parametrize("path, value, message", [
    ("prove.variants.1.cot_switch", {"mode": "switch", "k1": 4}, r"cot_switch\.k1: 4 leaves no CoT attempt"),
    ("prove.defaults.report_k", [1, 8], r"report_k \[8\]: pass@k is defined for 1 <= k <= samples \(4\)"),
    ("prove.defaults.temperature", 0.0, r"samples: 4 with temperature 0"),
    ("prove.tasks", ["minif2f_lean"], r"prove\.checker: task 'minif2f_lean' needs a Lean checker"),
    ("prove.tasks", ["minif2f_metamaht"], r"prove\.tasks\[0\]: unknown proving task 'minif2f_metamaht'; did you mean 'minif2f_metamath'"),
    ("prove.variants.0.cot_switch", {"mode": "always", "k1": 1}, r"k1 applies to mode switch only"),
    ("prove.defaults.repeatz", 2, r"prove\.defaults\.repeatz: unknown field"),
])
def test_section_validation_names_the_key(path, value, message):
    with pytest.raises(SuiteError, match=message):
        parse(_with(path, value), "s.yaml")


def test_cell_identity_holds_the_checker_and_not_its_timeouts():
    cells = expand(parse(SECTION), model_ids={"test/scripted": "hf:test/scripted@main"})
    assert [c.kind for c in cells] == ["prove", "prove"] and cells[0].limit == 2
    prove = cells[0].identity["prove"]
    assert prove["checker"]["database_sha256"].startswith("4d93307b") and prove["report_k"] == [1, 2, 4]
    slower = expand(parse(_with("prove.checker", {"timeout_s": 300, "read_timeout_s": 600})),
                    model_ids={"test/scripted": "hf:test/scripted@main"})
    assert [c.cell_hash for c in slower] == [c.cell_hash for c in cells]
    other_k = expand(parse(_with("prove.defaults.report_k", [1, 4])), model_ids={"test/scripted": "hf:test/scripted@main"})
    assert other_k[0].cell_hash != cells[0].cell_hash


def test_prompts_carry_the_problem_and_ask_for_the_body_only(data_dir):
    doc = get_proving_task("minif2f_metamath").load_docs()[0]
    direct, cot = metamath_prompt(doc, False), metamath_prompt(doc, True)
    assert f"{doc['label']} $p {doc['statement']} $= ? $." in direct and "Reply with the proof only" in direct
    assert "reason step by step" in cot


# --- end to end with a scripted model --------------------------------------------------------------
A, B, C = "mathd-algebra-245", "amc12a-2002-p1", "numbertheory-2dvd4expn"


def scripted_replies(refs: dict[str, str]):
    """(problem, attempt, cot) → reply: A proves on attempts 0 and 2 (c = 2 of 4); B only with
    CoT; C always."""
    fence = "```metamath\n{}\n```"
    garbage = ["I think the answer is 42.", fence.format("( a1i ) AB $}"), fence.format("( mathd-algebra-245 ) A"),
               fence.format("( nosuchlabel ) A")]

    def reply(name: str, attempt: int, cot: bool) -> str:
        if name == A:
            return fence.format(refs[A]) if attempt in (0, 2) else garbage[attempt % 4]
        if name == B:
            return f"Let me reason.\n{fence.format(refs[B])}" if cot else garbage[attempt % 4]
        return fence.format(refs[C])

    return reply


class ScriptedVariant(GenerationVariant):
    """A variant whose 'decoding' returns scripted replies, with per-request stats like the real
    decode loop's (the telemetry window and the stats bookkeeping are the real ones)."""

    def __init__(self, reply):
        super().__init__(model=None, tokenizer=None, policy_factory=DecodePolicy, batch_size=4, max_new_tokens=64,
                         param_bytes=0, name="scripted")
        self.reply = reply

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        return chat_history[-1]["content"]

    def warmup(self, prompts, max_new_tokens):
        return 0.0

    def _generate_until(self, requests):
        from harness.variant import sample_indices

        out = []
        for req, sample in zip(requests, sample_indices(requests)):
            text = self.reply(req.doc["name"], sample, bool(req.idx))
            tokens = max(1, len(text.split()))
            self.stats[(req.task_name, req.doc_id, req.idx, sample)] = RequestStats(
                input_tokens=len(req.args[0].split()), output_tokens=tokens, finish_reason="stop",
                latency_s=0.001 * tokens, ttft_s=0.001, tpot_s=0.001 if tokens > 1 else None,
                itl_s=[0.001] * (tokens - 1), batch_size=len(requests), counters={}, prompt_text=req.args[0],
                output_text=text)
            self.generation_time_s += 0.001 * tokens
            out.append(text)
        return out


@pytest.fixture
def scripted(tmp_path, monkeypatch):
    """A 3-problem proving task (A, B, C from the valid split, in a temporary data dir), the
    scripted adapter, and a dummy base (nothing loads)."""
    require_metamath()
    src = SHARED_DATA / "minif2f/metamath/valid.jsonl"
    if not src.is_file():
        pytest.skip(f"offline data not found at {src}")
    rows = {r["name"]: r for r in map(json.loads, src.read_text().splitlines())}
    (tmp_path / "data/minif2f").mkdir(parents=True)
    (tmp_path / "data/minif2f/three.jsonl").write_text("".join(json.dumps(rows[n]) + "\n" for n in (A, B, C)))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    task = ProvingTask(name="minif2f_three", version="1", description="A, B, C", checker="metamath",
                       data_relpath="minif2f/three.jsonl", size=3, required_fields=("name", "label"),
                       prompt_fn=metamath_prompt)
    PROVING_TASKS.add(task.name, task)
    reply = scripted_replies({n: rows[n]["reference_proof"] for n in (A, B, C)})

    class Scripted(Adapter):
        paper, arxiv = "test-only scripted model", ""
        Params = AdapterParams

        def wrap(self, base, batch_size=1, max_new_tokens=256):
            return ScriptedVariant(reply)

    ADAPTERS.register("scripted-test")(Scripted)

    class Base:
        model, tokenizer, canonical_id, load_time_s = None, None, "hf:test/scripted@main", 0.0

    from harness import models

    monkeypatch.setattr(models, "load", lambda *a, **k: Base())
    yield tmp_path
    PROVING_TASKS.unregister(task.name)
    ADAPTERS.unregister("scripted-test")


SUITE = """
name: scripted-proving
prove:
  models: [test/scripted]
  tasks: [minif2f_three]
  defaults: {samples: 4, temperature: 0.8, top_p: 0.95, max_new_tokens: 32, batch_size: 4, seed: 0, report_k: [1, 2, 4]}
  variants:
    - {name: baseline, adapter: scripted-test}
    - {name: cot-always, adapter: scripted-test, cot_switch: {mode: always}}
    - {name: cot-switch, adapter: scripted-test, cot_switch: {mode: switch, k1: 2}}
"""


def test_scripted_model_end_to_end(scripted):
    from harness.gate import run_gate
    from harness.runner import run_suite

    path = scripted / "proving.yaml"
    path.write_text(SUITE)
    console = Console(record=True, width=200)
    report = run_suite(path, scripted / "results", console=console)
    assert (report.total, report.ran, report.failed) == (3, 3, 0)
    cells = read_cells(report.run_dir).set_index("variant")
    samples = read_samples(report.run_dir)
    base = cells.loc["baseline"]
    # problem A: c = 2 of n = 4 → pass@2 = 5/6 exactly; B: 0 of 4; C: 4 of 4
    mine = samples[samples["cell_hash"] == base["cell_hash"]]
    counts = problem_counts(mine.to_dict("records"))
    assert counts == {0: (4, 2), 1: (4, 0), 2: (4, 4)}
    assert pass_at_k(*counts[0], 2) == 5 / 6
    assert math.isclose(base["pass_at_2"], (5 / 6 + 0 + 1) / 3) and base["pass_at_1"] == base["accuracy"] == 0.5
    assert base["pass_at_4"] == 2 / 3 and json.loads(base["pass_at_k_json"])["3"] == pytest.approx((1 + 0 + 1) / 3)
    assert (base["proved"], base["problems"], base["samples_per_doc"]) == (2, 3, 4)
    assert base["accuracy_ci95_low"] <= 0.5 <= base["accuracy_ci95_high"] and base["check_batches"] == 1
    assert base["check_time_s"] > 0 and base["tokens_per_proved"] == base["output_tokens_total"] / 2
    assert json.loads(base["checker_json"])["version"].startswith("0.195")
    # one row per (problem, attempt): doc_id = problem index, sample = attempt
    assert sorted(zip(mine["doc_id"], mine["sample"])) == [(d, a) for d in range(3) for a in range(4)]
    assert (mine["attempt"] == mine["sample"]).all() and set(mine["reference"]) == {A, B, C}
    b_rows = mine[mine["doc_id"] == 1].sort_values("sample")
    assert list(b_rows["check_status"]) == ["failed", "rejected", "rejected", "rejected"]  # 42 reads as a label list
    assert list(b_rows["correct"]) == [0.0] * 4 and b_rows["check_message"].str.len().min() > 0
    # CoT on every attempt: B proves too; the cascade proves B in round 2 with 2 CoT attempts
    assert cells.loc["cot-always", "proved"] == 3 and cells.loc["cot-always", "counter_cot_attempts"] == 12
    switch = cells.loc["cot-switch"]
    assert switch["proved_within_budget"] == switch["accuracy"] == 1.0 and math.isnan(switch["pass_at_1"])
    assert switch["n"] == 2 + 4 + 2 and switch["counter_cot_attempts"] == 2 and switch["check_batches"] == 2
    text = console.export_text()
    assert "pass@4 66.7%" in text and "tokens / proved" in text
    # the gate pairs attempts by (doc_id, sample) and passes a run against itself
    gate = run_gate(report.run_dir, report.run_dir, overrides={"cost": False})
    assert gate.exit_code == 0 and gate.n_matched == 3
    assert {c.n for c in gate.checks if c.metric == "accuracy"} == {12, 8}
    # resume: nothing to run
    again = run_suite(path, scripted / "results", console=Console(record=True))
    assert (again.run_id, again.skipped, again.ran) == (report.run_id, 3, 0)
    # a one-problem run: the cell's pass@2 is exactly problem A's 5/6
    one = run_suite(path, scripted / "one", limit=1, console=Console(record=True))
    assert read_cells(one.run_dir).set_index("variant").loc["baseline", "pass_at_2"] == 5 / 6


def test_missing_metamath_fails_before_any_model_loads(scripted, monkeypatch):
    from harness import models
    from harness.runner import run_suite

    path = scripted / "proving.yaml"
    path.write_text(SUITE)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(SuiteError, match="metamath' is not installed; install it with: sudo apt-get install metamath"):
        run_suite(path, scripted / "results", console=Console(record=True))
    assert summary_table is not None


def test_an_attempt_carrying_its_own_sample_index_keeps_it():
    from types import SimpleNamespace

    from harness.variant import sample_indices

    plain = [SimpleNamespace(task_name="t", doc_id=0, idx=0)] * 3
    assert sample_indices(plain) == [0, 1, 2]  # lm-eval's repeats
    own = [SimpleNamespace(task_name="t", doc_id=0, idx=1, sample=s) for s in (2, 3)]
    assert sample_indices(own) == [2, 3]  # a cascade's second round continues the attempt index


class _NeverProved:
    """A checker stand-in: every attempt failed (the slow test needs generation, not Metamath)."""

    def check(self, attempts):
        from harness.provers.verdict import Verdict

        return [Verdict("failed", "stub") for _ in attempts], [(len(attempts), 0.0)]

    def describe(self):
        return {"checker": "stub"}


@pytest.mark.slow
def test_attempts_are_seeded_per_attempt_through_the_real_decode_loop(embedded, data_dir):
    """Attempt a of problem d samples with sample_seed(seed, d, a) in every mode: the cascade's
    round-2 CoT attempts equal the always-CoT cell's same attempts, and a re-run repeats them."""
    from harness.kinds.prove.runner import run_prove_cell
    from harness.telemetry import Telemetry

    section = json.loads(json.dumps(SECTION))
    section["prove"].update(models=["embedded"], defaults={"limit": 1, "samples": 3, "temperature": 0.8,
                                                          "max_new_tokens": 8, "batch_size": 3, "warmup": 0})
    section["prove"]["variants"] = [{"name": "always", "adapter": "baseline", "cot_switch": {"mode": "always"}},
                                    {"name": "switch", "adapter": "baseline", "cot_switch": {"mode": "switch", "k1": 1}}]
    always, switch = expand(parse(section))
    with Telemetry(device="cpu") as telemetry:
        first = run_prove_cell(always, embedded, telemetry, checker=_NeverProved())
        again = run_prove_cell(always, embedded, telemetry, checker=_NeverProved())
        cascade = run_prove_cell(switch, embedded, telemetry, checker=_NeverProved())
    texts = {r["sample"]: r["output_text"] for r in first.sample_rows}
    assert texts == {r["sample"]: r["output_text"] for r in again.sample_rows}
    assert len(set(texts.values())) > 1  # sampled, not one greedy output three times
    round2 = {r["sample"]: r["output_text"] for r in cascade.sample_rows if json.loads(r["counters_json"])["cot"]}
    assert round2 == {1: texts[1], 2: texts[2]}
    assert first.cell_row["check_batches"] == 1 and cascade.cell_row["check_batches"] == 2


def test_a_proving_task_in_an_evaluation_suite_points_to_the_prove_section():
    data = {"name": "e", "models": ["test/scripted"], "tasks": ["minif2f_metamath"],
            "variants": [{"name": "b", "adapter": "baseline"}]}
    with pytest.raises(SuiteError, match=r"tasks\[0\]: 'minif2f_metamath' is a proving task: put it in a prove: section"):
        parse(data, "e.yaml")
