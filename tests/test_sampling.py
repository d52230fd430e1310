"""Sampling cells end to end: the suite's sampling settings and their hashes, lm-eval's
``repeats`` and filter, the variant's per-sample stats and seeds, one grade per sample, and the
``(doc_id, sample)`` sample rows."""

from __future__ import annotations

import dataclasses
import io
from collections import Counter
from types import SimpleNamespace

import pytest
import yaml
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from harness.config import suite as S
from harness.tasks import get_task
from harness.tasks.spec import TaskSpec
from harness.testing import TinyBase

IDS = {"embedded": "embedded:test@000"}


def _suite(**defaults) -> dict:
    return {
        "name": "t",
        "models": ["embedded"],
        "tasks": ["gsm8k"],
        "variants": [{"name": "a", "adapter": "baseline"}],
        **({"defaults": defaults} if defaults else {}),
    }


# ---- suite ----------------------------------------------------------------------------------------


def test_greedy_suites_hash_as_before_and_sampling_enters_the_identity():
    plain = S.parse(_suite())
    explicit = S.parse(_suite(samples=1, temperature=0.0, top_p=1.0))
    assert S.suite_hash(explicit) == S.suite_hash(plain)
    assert not set(S.SAMPLING_KEYS) & set(plain.canonical()["defaults"])
    cell = S.expand(plain, model_ids=IDS)[0]
    assert cell.identity["generation"] == {"max_new_tokens": 256, "do_sample": False}
    assert S.expand(explicit, model_ids=IDS)[0].cell_hash == cell.cell_hash

    sampled = S.parse(_suite(samples=4, temperature=0.7, top_p=0.9))
    assert S.suite_hash(sampled) != S.suite_hash(plain)
    assert {k: sampled.canonical()["defaults"][k] for k in S.SAMPLING_KEYS} == {"samples": 4, "temperature": 0.7, "top_p": 0.9}
    scell = S.expand(sampled, model_ids=IDS)[0]
    assert (scell.settings["samples"], scell.settings["temperature"], scell.settings["top_p"]) == (4, 0.7, 0.9)
    assert scell.identity["generation"] == {
        "max_new_tokens": 256, "do_sample": True, "temperature": 0.7, "top_p": 0.9, "samples": 4,
    }
    one = S.expand(S.parse(_suite(temperature=0.7)), model_ids=IDS)[0]  # one sample, sampled
    assert one.identity["generation"]["samples"] == 1 and one.cell_hash not in {cell.cell_hash, scell.cell_hash}


@pytest.mark.parametrize(
    "defaults, message",
    [
        ({"samples": 3}, "samples: 3 with temperature 0"),
        ({"top_p": 0.9}, "top_p: 0.9 has no effect with temperature 0"),
        ({"samples": 0, "temperature": 1.0}, "defaults.samples"),
        ({"temperature": -0.5}, "defaults.temperature"),
        ({"temperature": 1.0, "top_p": 0.0}, "defaults.top_p"),
        ({"temperature": 1.0, "top_p": 1.5}, "defaults.top_p"),
    ],
)
def test_bad_sampling_settings_are_refused(tmp_path, defaults, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_suite(**defaults)))
    with pytest.raises(S.SuiteError, match="defaults") as info:
        S.load(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_sampling_refuses_log_likelihood_tasks():
    data = _suite(samples=2, temperature=0.7)
    data["tasks"] = ["gsm8k", "sst2"]
    with pytest.raises(S.SuiteError, match="generation tasks only.*sst2"):
        S.parse(data)


# ---- lm-eval task config and one grade per sample -------------------------------------------------


def test_task_config_repeats_and_keeps_every_sample():
    from harness.tasks.lm_eval_bridge import task_config

    spec = get_task("gsm8k")
    greedy, _ = task_config(spec, 16, [])
    assert "repeats" not in greedy and "filter_list" not in greedy  # lm-eval's defaults, as before
    assert greedy["generation_kwargs"] == {"until": [], "max_gen_toks": 16, "do_sample": False}
    sampled, grades = task_config(spec, 16, [], samples=3, temperature=0.7, top_p=0.9, seed=5)
    assert sampled["repeats"] == 3 and grades == {}
    assert sampled["filter_list"] == [{"name": "none", "filter": [{"function": "take_first_k", "k": 3}]}]
    assert sampled["generation_kwargs"] == {
        "until": [], "max_gen_toks": 16, "do_sample": True, "temperature": 0.7, "top_p": 0.9, "seed": 5,
    }
    one, _ = task_config(spec, 16, [], temperature=0.7)
    assert "repeats" not in one and one["generation_kwargs"]["do_sample"] is True
    with pytest.raises(ValueError, match="temperature > 0"):
        task_config(spec, 16, [], samples=3)


class ScriptedGen(LM):
    """An lm-eval model answering the k-th occurrence of a doc's request correctly iff
    ``(doc_id + k)`` is even."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.requests = []

    def generate_until(self, requests, disable_tqdm=False):
        self.requests += requests
        seen: Counter = Counter()
        out = []
        for r in requests:
            k = seen[r.doc_id]
            seen[r.doc_id] += 1
            ref = self.spec.reference(r.doc)
            out.append(f"doc {r.doc_id} sample {k}: the answer is {ref}." if (r.doc_id + k) % 2 == 0 else f"sample {k}: no idea")
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


def _stats(prompt: str):
    from harness.variant import RequestStats

    return RequestStats(input_tokens=3, output_tokens=2, finish_reason="stop", latency_s=0.2, ttft_s=0.1, tpot_s=0.1,
                        itl_s=[0.1], batch_size=1, counters={}, prompt_text=prompt, output_text="")


def test_every_sample_is_graded_once_and_becomes_a_row(data_dir):
    """lm-eval sends the doc's instance 3 times; all 3 responses reach process_results, which
    grades each once; the sample rows reuse those grades (no second grading)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from harness.kinds.eval.runner import generation_sample_rows
    from harness.tasks.lm_eval_bridge import build_generation_task

    calls = []
    real = get_task("gsm8k")
    spec = dataclasses.replace(real, grade_fn=lambda text, ref, **kw: calls.append(text) or real.grade_fn(text, ref, **kw))
    docs = spec.load_docs()[:2]
    task, grades = build_generation_task(spec, 16, docs, samples=3, temperature=0.7, seed=1)
    lm = ScriptedGen(spec)
    out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=TaskManager(include_defaults=False),
                                  log_samples=True, bootstrap_iters=0, verbosity="ERROR")
    assert [r.doc_id for r in lm.requests].count(0) == 3 and len(lm.requests) == 6
    assert lm.requests[0].args[1]["seed"] == 1 and lm.requests[0].args[1]["do_sample"] is True
    records = out["samples"]["gsm8k"]
    assert [len(r["filtered_resps"][0]) for r in records] == [3, 3]  # take_first_k kept every sample
    assert len(calls) == 6
    assert {k: g.correct for k, g in grades.items()} == {
        (0, 0): True, (0, 1): False, (0, 2): True, (1, 0): False, (1, 1): True, (1, 2): False,
    }
    assert [r["exact_match"] for r in sorted(records, key=lambda r: r["doc_id"])] == pytest.approx([2 / 3, 1 / 3])
    assert out["results"]["gsm8k"]["exact_match,none"] == pytest.approx(0.5)

    cell = SimpleNamespace(task="gsm8k", model_id="m", variant=SimpleNamespace(name="v"))
    stats = {("gsm8k", d, 0, s): _stats(f"p{d}") for d in (0, 1) for s in range(3)}
    rows = generation_sample_rows(cell, spec, list(reversed(records)), stats, grades)
    assert len(calls) == 6  # not graded again
    assert [(r["doc_id"], r["sample"]) for r in rows] == [(d, s) for d in (0, 1) for s in range(3)]
    assert [r["correct"] for r in rows] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    texts = {(r["doc_id"], k): t for r in records for k, t in enumerate(r["filtered_resps"][0])}
    assert [r["output_text"] for r in rows] == [texts[(r["doc_id"], r["sample"])] for r in rows]
    assert all(f"sample {r['sample']}" in r["output_text"] for r in rows)  # response k is sample k
    with pytest.raises(RuntimeError, match="doc 1 sample 2: the variant recorded no stats"):
        generation_sample_rows(cell, spec, records, {k: v for k, v in stats.items() if k != ("gsm8k", 1, 0, 2)}, grades)


# ---- the variant ------------------------------------------------------------------------------------


def test_sampling_of_reads_lm_eval_kwargs():
    from harness.variant import sampling_of

    assert sampling_of({"do_sample": False, "temperature": 0.9}) == (0.0, 1.0)
    assert sampling_of({"until": []}) == (0.0, 1.0)
    assert sampling_of({"do_sample": True}) == (1.0, 1.0)
    assert sampling_of({"temperature": 0.6, "top_p": 0.8}) == (0.6, 0.8)
    assert sampling_of({"top_p": 0.8}) == (1.0, 0.8)
    assert sampling_of({"do_sample": True, "temperature": 0.0}) == (0.0, 1.0)


def test_variant_keys_stats_by_sample_and_seeds_each_sample():
    """Repeated instances get samples 0..n-1 and their own seeds: the outputs do not depend on the
    batch size, equal generate() with the documented seeds, and greedy requests still work."""
    from harness.adapters import ADAPTERS
    from harness.generation import GenerationSettings, eos_ids, generate
    from harness.variant import sample_seed

    base = TinyBase(seed=3)
    kwargs = {"until": [], "max_gen_toks": 10, "do_sample": True, "temperature": 2.0, "top_p": 0.95, "seed": 7}
    prompts = {0: "The cat sat on", 1: "Numbers: 1, 2, 3,"}

    def requests():
        out = []
        for doc_id, prompt in prompts.items():
            inst = Instance("generate_until", doc={}, arguments=(prompt, dict(kwargs)), idx=0, metadata=("t", doc_id, 3))
            out += [inst] * 3  # as lm-eval's evaluator clones a repeated request
        return out

    outputs = {}
    for batch_size in (1, 4):
        variant = ADAPTERS.get("baseline")().wrap(base, batch_size=batch_size, max_new_tokens=10)
        reqs = requests()
        outputs[batch_size] = variant.generate_until(reqs)
        assert set(variant.stats) == {("t", d, 0, s) for d in prompts for s in range(3)}
        for i, req in enumerate(reqs):
            assert variant.stats[("t", req.doc_id, 0, i % 3)].output_text == outputs[batch_size][i]
    assert outputs[1] == outputs[4]
    assert len(set(outputs[1][:3])) > 1  # three different samples of doc 0
    ids = base.tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
    settings = GenerationSettings(10, eos_token_ids=eos_ids(base.model, base.tokenizer), temperature=2.0, top_p=0.95)
    alone = generate(base.model, base.tokenizer, [ids], settings, seeds=[sample_seed(7, 0, 1)])[0]
    assert alone.text == outputs[1][1]
    assert sample_seed(7, 0, 1) == sample_seed(7, 0, 1) != sample_seed(7, 0, 2) != sample_seed(8, 0, 1)

    greedy = ADAPTERS.get("baseline")().wrap(base, batch_size=2, max_new_tokens=6)
    inst = Instance("generate_until", doc={}, arguments=(prompts[0], {"until": [], "max_gen_toks": 6, "do_sample": False}),
                    idx=0, metadata=("t", 0, 1))
    assert greedy.generate_until([inst]) and set(greedy.stats) == {("t", 0, 0, 0)}


# ---- a real run: suite → lm-eval → variant → rows → store → reader ----------------------------------------


@pytest.fixture
def tiny_models(monkeypatch):
    from harness import models
    from harness.core import refs

    tiny = TinyBase(seed=3)
    monkeypatch.setattr(refs, "resolve", lambda ref: models.ModelRef("test", tiny.canonical_id, "tiny"))
    monkeypatch.setattr(
        models, "load",
        lambda ref, dtype="fp32", device="cpu": models.BaseModel(tiny.model, tiny.tokenizer, tiny.canonical_id, dtype, device),
    )
    return tiny


@pytest.mark.parametrize("defaults, n_samples", [({}, 1), ({"samples": 3, "temperature": 2.0, "top_p": 0.95}, 3)])
def test_a_run_grades_each_sample_once_and_stores_doc_sample_rows(tmp_path, monkeypatch, data_dir, tiny_models, defaults, n_samples):
    from rich.console import Console

    from harness.results import read_cells, read_samples
    from harness.runner import run_suite

    calls = []
    real_grade = TaskSpec.grade
    monkeypatch.setattr(TaskSpec, "grade", lambda self, text, ref, **kw: calls.append(text) or real_grade(self, text, ref, **kw))
    data = _suite(limit=2, batch_size=2, max_new_tokens=8, device="cpu", warmup=0, **defaults)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    report = run_suite(path, tmp_path / "results", console=Console(file=io.StringIO()))
    assert report.failed == 0 and report.ran == 1
    assert len(calls) == 2 * n_samples  # exactly one grader call per sample
    cells, samples = read_cells(tmp_path / "results"), read_samples(tmp_path / "results")
    assert list(zip(samples["doc_id"], samples["sample"])) == [(d, s) for d in range(2) for s in range(n_samples)]
    assert sorted(samples["output_text"]) == sorted(calls)
    cell = cells.iloc[0]
    assert cell["n"] == 2 * n_samples and cell["accuracy"] == pytest.approx(samples["correct"].mean())
    if n_samples > 1:
        assert samples.groupby("doc_id")["output_text"].nunique().max() > 1
