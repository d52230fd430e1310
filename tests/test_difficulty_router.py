"""``difficulty_router`` (DiffAdapt, arXiv 2510.19669) on tiny random Llama models; one slow test
on the embedded model."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from lm_eval.api.instance import Instance

from harness.adapters import ADAPTERS
from harness.adapters.base import CellContext
from harness.adapters.difficulty_probe import CACHE_FILE, Probe, cross_validated_accuracy, label_problems
from harness.adapters.difficulty_router import STRATEGY_PROMPTS, strategies
from harness.adapters.reasoning_format import chat_prompt
from harness.generation import eos_ids, generate
from harness.tasks.grading import Grade
from harness.testing import TinyBase

TOKENS = {"easy_tokens": 4, "normal_tokens": 7, "hard_tokens": 11}
QUESTIONS = ["What is 2+3?", "Name a colour.", "Prove it."]
CAP = 16


def _requests(variant, kwargs=None):
    kwargs = kwargs or {"until": [], "max_gen_toks": CAP, "do_sample": False}
    return [
        Instance("generate_until", doc={}, idx=0, metadata=("t", i, 1),
                 arguments=(variant.apply_chat_template([{"role": "user", "content": q}]), dict(kwargs)))
        for i, q in enumerate(QUESTIONS)
    ]


def _direct(base, name, question):
    """The strategy ``name`` run directly: its system prompt, budget and temperature."""
    strategy = strategies(ADAPTERS.get("difficulty_router").Params(**TOKENS))[name]
    tok = base.tokenizer
    ids = tok(chat_prompt(tok, [{"role": "user", "content": question}], STRATEGY_PROMPTS[name]),
              add_special_tokens=False)["input_ids"]
    return generate(base.model, tok, [ids], strategy.settings(CAP, eos_ids(base.model, tok)))[0]


@pytest.mark.parametrize("name", ["easy", "normal", "hard"])
def test_forced_class_equals_that_strategy_run_directly(name):
    base = TinyBase(seed=5)
    variant = ADAPTERS.get("difficulty_router")({**TOKENS, "force": name}).wrap(base, batch_size=2, max_new_tokens=CAP)
    outputs = variant.generate_until(_requests(variant))
    for i, question in enumerate(QUESTIONS):
        direct = _direct(base, name, question)
        stats = variant.stats[("t", i, 0, 0)]
        assert outputs[i] == direct.text and stats.output_tokens == direct.output_tokens
        assert stats.output_tokens <= TOKENS[f"{name}_tokens"]
        assert (STRATEGY_PROMPTS[name] or "[user]") in stats.prompt_text
        assert stats.counters[f"routed_{name}"] == 1.0 and math.isnan(stats.counters["probe_cv_accuracy"])


class ListProbe(Probe):
    """Answers ``labels`` in order (one per distinct prompt)."""

    def __init__(self, labels):
        super().__init__()
        self.labels = labels

    def predict(self, features):
        assert np.asarray(features).shape == (len(self.labels), 64)  # the tiny model's hidden size
        return list(self.labels)


def test_each_request_gets_its_own_class_strategy_and_counters():
    base = TinyBase(seed=5)
    adapter = ADAPTERS.get("difficulty_router")(TOKENS)
    adapter.probe, adapter.cv_accuracy = ListProbe(["hard", "easy", "hard"]), 0.75
    variant = adapter.wrap(base, batch_size=2, max_new_tokens=CAP)
    outputs = variant.generate_until(_requests(variant))
    for i, name in enumerate(["hard", "easy", "hard"]):
        assert outputs[i] == _direct(base, name, QUESTIONS[i]).text
        counters = variant.stats[("t", i, 0, 0)].counters
        assert counters == {"routed_easy": float(name == "easy"), "routed_normal": 0.0,
                            "routed_hard": float(name == "hard"), "probe_cv_accuracy": 0.75}


def test_strategy_temperature_samples_with_the_request_seed():
    p = ADAPTERS.get("difficulty_router").Params(**TOKENS, hard_temperature=0.7)
    kwargs = strategies(p)["hard"].generation_kwargs({"max_gen_toks": 8, "do_sample": False, "seed": 3}, 99)
    assert kwargs == {"max_gen_toks": 8, "do_sample": True, "temperature": 0.7, "seed": 3}
    greedy = strategies(p)["easy"].generation_kwargs({"do_sample": True, "temperature": 1.0, "top_p": 0.9}, 99)
    assert greedy == {"max_gen_toks": 4, "do_sample": False}


def test_labels_cheapest_solver_then_entropy_median():
    solved = {"easy": [True, False, False, False, False],
              "normal": [True, True, False, False, False],
              "hard": [False, True, True, False, False]}
    labels, median = label_problems(solved, [0.1, 0.2, 0.3, 0.9, 0.05])
    assert median == 0.2
    assert labels == ["easy", "normal", "hard", "hard", "normal"]


def test_probe_fit_and_cross_validation():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(-3, 1, (6, 4)), rng.normal(3, 1, (6, 4))])
    labels = ["easy"] * 6 + ["hard"] * 6
    assert Probe.fit(features, labels).predict(features) == labels
    assert cross_validated_accuracy(features, labels) == 1.0
    assert Probe.fit(features, ["normal"] * 12).predict(features[:2]) == ["normal", "normal"]
    assert cross_validated_accuracy(rng.normal(0, 1, (12, 4)), labels) < 1.0


class FakeSpec:
    """A task whose grader credits outputs longer than 8 characters (tiny models write noise)."""

    name, version = "fake", "1"

    def prompt(self, doc):
        return doc["question"]

    def grade_doc(self, text, doc, truncated=False):
        return Grade(correct=len(text) > doc["need"], extracted=None, reference="", reason="fake")


def test_prepare_trains_the_probe_on_held_out_docs_and_reuses_the_cache():
    base = TinyBase(seed=5)
    docs = [{"doc_id": i, "question": f"Q{i}: {'x' * i}?", "need": [3, 100, 100, 100, 100, 100][i % 6]}
            for i in range(12)]
    files: dict[str, bytes] = {}
    adapter = ADAPTERS.get("difficulty_router")({**TOKENS, "calibration_docs": 6})
    assert adapter.needs_preparation()
    with pytest.raises(RuntimeError, match="prepare"):
        adapter.wrap(base)
    with pytest.raises(ValueError, match="held out"):
        adapter.prepare(base, FakeSpec(), docs, CellContext(limit=8, batch_size=2, max_new_tokens=CAP, files=files))
    columns = adapter.prepare(base, FakeSpec(), docs, CellContext(limit=6, batch_size=2, max_new_tokens=CAP, files=files))
    record = json.loads(columns["calibration_json"])
    assert record["slice"] == "docs[6:12]" and record["n"] == 6 and not record["reused"]
    assert record["labels"][0] == "easy"  # doc 6 needs 3 characters: Easy solves it
    assert record["solved_counts"]["easy"] == 1 and set(record["labels"][1:]) <= {"normal", "hard"}
    assert 0.0 <= record["cv_accuracy"] <= 1.0 and CACHE_FILE in files
    again = ADAPTERS.get("difficulty_router")({**TOKENS, "calibration_docs": 6})
    reused = again.prepare(base, FakeSpec(), docs, CellContext(limit=6, batch_size=2, max_new_tokens=CAP, files=files))
    assert json.loads(reused["calibration_json"])["reused"] and reused["calibration_time_s"] == 0.0
    variant = again.wrap(base, max_new_tokens=CAP)
    assert variant.route([chat_prompt(base.tokenizer, [{"role": "user", "content": d["question"]}]) for d in docs[6:]])


def test_budgets_must_fit_the_cap():
    with pytest.raises(ValueError, match="hard_tokens=128 > max_new_tokens=64"):
        ADAPTERS.get("difficulty_router")().check(64)


@pytest.mark.slow
def test_embedded_probe_uses_at_least_two_classes(embedded):
    from harness.tasks import get_task

    spec = get_task("gsm8k")
    docs = spec.load_docs()
    adapter = ADAPTERS.get("difficulty_router")({"easy_tokens": 16, "normal_tokens": 32, "hard_tokens": 64,
                                                 "calibration_docs": 8})
    columns = adapter.prepare(embedded, spec, docs, CellContext(limit=16, batch_size=8, max_new_tokens=64))
    record = json.loads(columns["calibration_json"])
    print(record["label_counts"], record["solved_counts"], record["cv_accuracy"])
    assert sum(c > 0 for c in record["label_counts"].values()) >= 2
    variant = adapter.wrap(embedded, batch_size=8, max_new_tokens=64)
    tok = embedded.tokenizer
    routed = variant.route([chat_prompt(tok, [{"role": "user", "content": spec.prompt(d)}]) for d in docs[:16]])
    print(routed)
    assert len(set(routed)) >= 2
