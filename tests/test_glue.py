"""GLUE as log-likelihood multiple choice: data, prompts, metrics, scoring, adapters and suites.

Fast: tiny random models (``harness.testing``) and scripted log-likelihoods; the embedded
model's parity with lm-eval's HF backend is in ``test_glue_embedded.py`` (slow).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from harness.config import suite as S
from harness.adapters import ADAPTERS
from harness.scoring import encode_pair, score
from harness.tasks import DataError, get_task
from harness.tasks.glue import TASKS as GLUE
from harness.tasks.lm_eval_bridge import build_task
from harness.testing import TinyBase

CLASSIFICATION = [t.name for t in GLUE if not t.is_regression]
LM_EVAL_GLUE = Path(__import__("lm_eval").__file__).parent / "tasks" / "glue"


# ---- data ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [t.name for t in GLUE])
def test_glue_validation_docs_have_hub_fields_and_valid_labels(name, data_dir):
    spec = get_task(name)
    docs = spec.load_docs()
    assert len(docs) == spec.size
    assert [d["doc_id"] for d in docs] == list(range(spec.size))
    for doc in docs:
        assert all(isinstance(doc[f], str) and doc[f] for f in spec.text_fields)
        if spec.is_regression:
            assert 0.0 <= float(doc["label"]) <= 5.0
        else:
            assert doc["label"] in range(len(spec.choices))
    if not spec.is_regression:  # both classes occur
        assert {d["label"] for d in docs} == set(range(len(spec.choices)))


def test_glue_data_errors_name_the_problem(tmp_path, monkeypatch):
    folder = tmp_path / "glue" / "sst2"
    folder.mkdir(parents=True)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    (folder / "validation.jsonl").write_text('{"sentence": "a", "label": 1, "idx": 0}\n')
    with pytest.raises(DataError, match="expected 872 docs"):
        get_task("sst2").load_docs()
    with pytest.raises(DataError, match="glue/rte/validation.jsonl"):
        get_task("rte").load_docs()


# ---- formulation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_prompts_and_choices_are_lm_eval_own_glue_configs(name, data_dir):
    """Our versioned task renders exactly lm-eval's GLUE prompt and choices for the same docs."""
    import jinja2

    spec = get_task(name)
    config = yaml.safe_load((LM_EVAL_GLUE / name / "default.yaml").read_text())
    assert config["output_type"] == "multiple_choice" and config["doc_to_target"] == "label"
    assert list(spec.choices) == config["doc_to_choice"]
    assert {m["metric"] for m in config["metric_list"]} <= set(spec.metrics)
    template = jinja2.Template(config["doc_to_text"], keep_trailing_newline=True)
    for doc in spec.load_docs()[:20]:
        assert spec.prompt(doc) == template.render(**doc)


class ScriptedLM(LM):
    """An lm-eval model whose log-likelihoods come from ``table[(context, continuation)]``."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.requests: list[tuple[str, str]] = []

    def loglikelihood(self, requests, disable_tqdm=False):
        self.requests += [r.args for r in requests]
        return [(float(self.table(*r.args)), False) for r in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm=False):
        raise NotImplementedError


def _evaluate(spec, docs, table):
    import lm_eval
    from lm_eval.tasks import TaskManager

    lm = ScriptedLM(table)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=[build_task(spec, 1, docs)],
        task_manager=TaskManager(include_defaults=False),
        log_samples=True,
        bootstrap_iters=0,
        verbosity="ERROR",
    )
    return lm, out["results"][spec.name], out["samples"][spec.name]


def _binary_docs(spec, confusion: dict[tuple[int, int], int]):
    """Docs with gold labels and a table predicting a chosen label for each: ``confusion`` maps
    (gold, predicted) -> count."""
    docs, predicted = [], {}
    for (gold, pred), count in confusion.items():
        for _ in range(count):
            i = len(docs)
            doc = {f: f"text {i} {f}" for f in spec.text_fields} | {"label": gold, "doc_id": i}
            docs.append(doc)
            predicted[spec.prompt(doc)] = " " + spec.choices[pred]
    return docs, lambda ctx, cont: 0.0 if predicted[ctx] == cont else -1.0


def test_one_loglikelihood_request_per_choice_with_lm_eval_delimiter():
    spec = get_task("rte")
    docs, table = _binary_docs(spec, {(0, 0): 2, (1, 0): 1})
    lm, _, samples = _evaluate(spec, docs, table)
    assert sorted(lm.requests) == sorted((spec.prompt(d), " " + c) for d in docs for c in spec.choices)
    assert spec.prompt(docs[0]).endswith("True or False?\nAnswer:")
    assert len(samples) == 3


def test_mcc_f1_and_accuracy_on_a_constructed_confusion():
    tp, tn, fp, fn = 6, 3, 1, 2
    confusion = {(1, 1): tp, (0, 0): tn, (0, 1): fp, (1, 0): fn}
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    f1 = 2 * tp / (2 * tp + fp + fn)
    acc = (tp + tn) / (tp + tn + fp + fn)

    from harness.kinds.eval.choice_rows import choice_metric_columns

    cola = get_task("cola")
    _, results, _ = _evaluate(cola, *_binary_docs(cola, confusion))
    assert results["mcc,none"] == pytest.approx(mcc) and results["acc,none"] == pytest.approx(acc)
    assert choice_metric_columns(cola, results) == {"metric_mcc": pytest.approx(mcc)}

    mrpc = get_task("mrpc")
    _, results, _ = _evaluate(mrpc, *_binary_docs(mrpc, confusion))
    assert results["f1,none"] == pytest.approx(f1) and results["acc,none"] == pytest.approx(acc)
    assert choice_metric_columns(mrpc, results) == {"metric_f1": pytest.approx(f1)}


def test_stsb_expected_rating_and_correlations():
    spec = get_task("stsb")
    gold = [0.4, 1.0, 2.2, 3.0, 4.6, 5.0, 2.5]
    # doc i puts weight w on "k" and 1 - w on "k+1": expected rating k + 1 - w
    plan = [(0, 0.9), (1, 0.5), (1, 0.2), (3, 0.8), (4, 0.3), (4, 0.05), (2, 0.1)]
    docs, weights = [], {}
    for i, (g, (k, w)) in enumerate(zip(gold, plan)):
        doc = {"sentence1": f"a{i}", "sentence2": f"b{i}", "label": g, "doc_id": i}
        docs.append(doc)
        weights[spec.prompt(doc)] = {f" {k}": w, f" {k + 1}": 1 - w}
    expected = [k + 1 - w for k, w in plan]
    _, results, samples = _evaluate(spec, docs, lambda ctx, cont: math.log(weights[ctx].get(cont, 1e-30)))
    for record in samples:
        assert spec.predict([ll for ll, _ in record["filtered_resps"]]) == pytest.approx(expected[record["doc_id"]])
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731  (no ties here)
    assert results["pearson,none"] == pytest.approx(np.corrcoef(gold, expected)[0, 1])
    assert results["spearman,none"] == pytest.approx(np.corrcoef(ranks(gold), ranks(expected))[0, 1])


def test_predict_reference_and_grade():
    sst2, stsb = get_task("sst2"), get_task("stsb")
    assert sst2.predict([-2.0, -1.0]) == 1 and sst2.predict([-1.0, -1.0]) == 0  # ties: first, as numpy
    assert sst2.answer(1) == "positive" == sst2.reference({"label": 1})
    assert sst2.grade("positive", "positive").correct and not sst2.grade("negative", "positive").correct
    assert stsb.predict([0.0] * 6) == pytest.approx(2.5)
    assert stsb.predict([0.0, -1e9, -1e9, -1e9, -1e9, math.log(3)]) == pytest.approx(5 * 3 / 4)
    with pytest.raises(ValueError, match="6 choices"):
        stsb.predict([0.0, 0.0])


# ---- log-likelihood through the variant ---------------------------------------------------------


def _direct(model, tokenizer, context: str, continuation: str) -> tuple[float, bool]:
    """Σ log p(continuation tokens) and greedy flag from one unpadded forward of the whole text."""
    ctx, cont = encode_pair(tokenizer, context, continuation)
    ids = ctx + cont
    with torch.no_grad():
        logp = model(torch.tensor([ids[:-1]])).logits[0].float().log_softmax(-1)
    rows = range(len(ctx) - 1, len(ids) - 1)
    total = sum(logp[p, ids[p + 1]].item() for p in rows)
    return total, all(int(logp[p].argmax()) == ids[p + 1] for p in rows)


def _instances(pairs, task="t"):
    return [
        Instance("loglikelihood", {}, (ctx, cont), idx=k, metadata=(task, doc, 1)) for doc, k, ctx, cont in pairs
    ]


def _greedy_text(base, context: str, n: int) -> str:
    ids = base.tokenizer.encode(context)
    start = len(ids)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(base.model(torch.tensor([ids])).logits[0, -1].argmax()))
    return base.tokenizer.decode(ids[start:])


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_loglikelihood_equals_direct_forward(batch_size):
    base = TinyBase()
    contexts = ["The cat sat on the", "Q: is it?\nA:", "hello", "a much longer context with more characters in it:"]
    greedy = _greedy_text(base, contexts[1], 3)
    pairs = [
        (0, 0, contexts[0], " mat"),
        (0, 1, contexts[0], " dog and more"),
        (1, 0, contexts[1], " a"),  # one-token choices after a shared prefix share one forward row
        (1, 1, contexts[1], " b"),
        (1, 2, contexts[1], greedy),  # the model's own greedy continuation
        (2, 0, contexts[2] + " ", "world"),  # trailing space moves to the continuation
        (3, 0, contexts[3], " yes"),
    ]
    variant = ADAPTERS.get("baseline")().wrap(base, batch_size=batch_size)
    got = variant.loglikelihood(_instances(pairs))
    for (doc, k, ctx, cont), (lp, greedy_flag) in zip(pairs, got):
        want_lp, want_greedy = _direct(base.model, base.tokenizer, ctx, cont)
        assert lp == pytest.approx(want_lp, abs=1e-4) and lp < 0
        assert greedy_flag == want_greedy
        stats = variant.stats[("t", doc, k, 0)]
        assert stats.logprob == lp and stats.output_tokens is None and stats.latency_attributed
    assert got[4][1] is True and not all(g for _, g in got)
    assert encode_pair(base.tokenizer, "hello ", "world") == encode_pair(base.tokenizer, "hello", " world")


def test_empty_context_conditions_on_the_prefix_token():
    base = TinyBase()
    ctx, cont = encode_pair(base.tokenizer, "", "abc")
    assert ctx == [base.tokenizer.eos_token_id] and base.tokenizer.decode(cont) == "abc"


def test_batch_time_is_attributed_to_its_requests():
    base = TinyBase()
    tok = base.tokenizer
    pairs = [encode_pair(tok, f"context number {i}" + "x" * i, " ok") for i in range(7)]
    ticks = iter(range(1000))
    scored = score(base.model, pairs, batch_size=3, pad_id=0, clock=lambda: float(next(ticks)))
    # the scripted clock advances 1 s between each batch's start and end: 3 batches of 3, 3, 1 rows
    assert [s.batch_rows for s in sorted(scored, key=lambda s: -s.input_tokens)] == [3, 3, 3, 3, 3, 3, 1]
    assert sum(s.latency_s for s in scored) == pytest.approx(3.0)
    variant = ADAPTERS.get("baseline")().wrap(base, batch_size=3)
    variant.loglikelihood(_instances([(i, 0, f"c{i}", " ok") for i in range(4)]))
    assert variant.generation_time_s == pytest.approx(sum(s.latency_s for s in variant.stats.values()))


LL_ADAPTERS = {"baseline": {}, "int8": {}, "depth_subnet": {"layers": 2}}


def test_loglikelihood_support_is_declared_per_adapter():
    declared = {name for name in ADAPTERS.names() if ADAPTERS.get(name).supports_loglikelihood}
    assert set(LL_ADAPTERS) <= declared
    assert not ADAPTERS.get("early_exit").supports_loglikelihood
    assert not ADAPTERS.get("think_budget").supports_loglikelihood


@pytest.mark.parametrize("name", sorted(LL_ADAPTERS))
def test_model_transforms_score_with_their_own_model(name):
    """Each adapter's log-likelihood is its transformed model's forward (and not the base's)."""
    base = TinyBase()
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    variant = ADAPTERS.get(name)(LL_ADAPTERS[name]).wrap(base, batch_size=2)
    pairs = [
        (0, 0, "Sentence: it is fine.\nAnswer:", " yes, it is fine"),
        (0, 1, "Sentence: it is.\nAnswer:", " no, not"),
    ]
    got = variant.loglikelihood(_instances(pairs))
    for (_, _, ctx, cont), (lp, _) in zip(pairs, got):
        assert lp == pytest.approx(_direct(variant.model, base.tokenizer, ctx, cont)[0], abs=1e-4)
        if name != "baseline":  # the technique changes the scores
            assert abs(lp - _direct(base.model, base.tokenizer, ctx, cont)[0]) > 1e-3
    assert all(torch.equal(v, base.model.state_dict()[k]) for k, v in before.items())
    counters = variant.stats[("t", 0, 0, 0)].counters
    expected = {"baseline": {}, "int8": {"quantized_linears": 4 * 7.0}, "depth_subnet": {"layers_executed": 2.0}}
    assert counters == expected[name]


@pytest.mark.parametrize("name", ["early_exit", "think_budget"])
def test_decode_loop_variants_refuse_loglikelihood(name):
    variant = ADAPTERS.get(name)().wrap(TinyBase())
    with pytest.raises(NotImplementedError, match="decode loop"):
        variant.loglikelihood(_instances([(0, 0, "a", " b")]))


# ---- suites ---------------------------------------------------------------------------------------


def _suite(tmp_path, tasks, adapters) -> Path:
    data = {
        "name": "nlu-t",
        "models": ["embedded"],
        "tasks": tasks,
        "variants": [{"name": f"v{i}", "adapter": a} for i, a in enumerate(adapters)],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("adapter", ["early_exit", "think_budget"])
def test_generation_only_adapter_in_an_nlu_suite_is_rejected_before_loading(tmp_path, monkeypatch, adapter):
    from harness import models
    from harness.runner import run_suite

    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    path = _suite(tmp_path, ["sst2", "gsm8k"], ["baseline", adapter])
    with pytest.raises(S.SuiteError) as info:
        run_suite(path, tmp_path / "results")
    msg = str(info.value)
    assert f"variants[1].adapter: {adapter!r}" in msg and "log-likelihood" in msg and "sst2" in msg
    assert "gsm8k" not in msg and "\n" not in msg
    S.load(_suite(tmp_path, ["gsm8k"], ["baseline", adapter]))  # fine with generation tasks only


def test_nlu_suite_runs_end_to_end_on_a_tiny_model(tmp_path, monkeypatch, data_dir):
    """run_suite → cells and samples on disk → summary and leaderboard rows, with a tiny model."""
    from rich.console import Console

    from harness import models
    from harness.results import read_cells, read_samples, summary_table
    from harness.runner import run_suite

    tiny = TinyBase()
    from harness.core import refs

    monkeypatch.setattr(refs, "resolve", lambda ref: models.ModelRef("test", tiny.canonical_id, "tiny"))
    monkeypatch.setattr(
        models,
        "load",
        lambda ref, dtype="fp32", device="cpu": models.BaseModel(tiny.model, tiny.tokenizer, tiny.canonical_id, dtype, device),
    )
    data = {
        "name": "nlu-tiny",
        "models": ["embedded"],
        "tasks": ["mrpc", "cola", "stsb"],
        "defaults": {"limit": 4, "batch_size": 3, "max_new_tokens": 1, "device": "cpu"},
        "variants": [
            {"name": "baseline", "adapter": "baseline"},
            {"name": "depth-2", "adapter": "depth_subnet", "params": {"layers": 2}},
        ],
    }
    path = tmp_path / "nlu-tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    report = run_suite(path, tmp_path / "results", console=Console(file=io.StringIO()))
    assert report.failed == 0 and report.ran == 6
    cells = read_cells(tmp_path / "results")
    samples = read_samples(tmp_path / "results")
    assert (cells["status"] == "ok").all() and (cells["n"] == 4).all()
    assert cells["latency_attributed"].all() and cells["output_tokens_mean"].isna().all()
    assert cells["throughput_tok_per_s"].isna().all() and cells["energy_per_token_j"].isna().all()
    for cell in cells.itertuples():
        rows = samples[samples["cell_hash"] == cell.cell_hash]
        assert rows["latency_s"].sum() == pytest.approx(cell.generation_time_s)
        assert rows["output_tokens"].isna().all() and (rows["input_tokens"] > 0).all()
        if cell.task == "stsb":
            assert math.isnan(cell.accuracy) and rows["correct"].isna().all()
            assert rows["extracted_answer"].astype(float).between(0, 5).all()
        else:
            assert cell.accuracy == pytest.approx(rows["correct"].mean())
            assert set(rows["extracted_answer"]) <= set(get_task(cell.task).label_names)
    by_task = cells.set_index(["task", "variant"])
    assert by_task["metric_f1"].notna().loc["mrpc"].all() and by_task["metric_mcc"].notna().loc["cola"].all()
    assert by_task["metric_pearson"].isna().loc["mrpc"].all() and by_task["metric_pearson"].notna().loc["stsb"].all()
    assert {"metric_pearson", "metric_spearman"} <= set(cells.columns)
    assert (cells[cells.adapter == "depth_subnet"]["counter_layers_executed_mean"] == 2.0).all()

    console = Console(record=True, width=200)
    console.print(summary_table(cells))
    assert "task metrics" in console.export_text()
    dashboard = pytest.importorskip("dashboard.tables")
    board = dashboard.leaderboard_rows(cells[cells.task == "mrpc"])
    assert "metric_f1" in board.columns and len(board) == 2
