"""GLUE on the embedded SmolLM2-135M-Instruct (slow): the baseline's log-likelihoods equal
lm-eval's own HF backend on the same documents, and a model transform changes them."""

from __future__ import annotations

import pytest

from harness.adapters import ADAPTERS
from harness.tasks.glue import TASKS as GLUE

pytestmark = pytest.mark.slow

DOCS = 3  # per task


def _responses(model, spec, docs) -> dict[int, list[tuple[float, bool]]]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from harness.tasks.lm_eval_bridge import build_task

    out = lm_eval.simple_evaluate(
        model=model,
        tasks=[build_task(spec, 1, docs)],
        task_manager=TaskManager(include_defaults=False),
        limit=DOCS,
        log_samples=True,
        bootstrap_iters=0,
        verbosity="ERROR",
    )
    return {s["doc_id"]: list(s["filtered_resps"]) for s in out["samples"][spec.name]}


@pytest.mark.parametrize("spec", GLUE, ids=[t.name for t in GLUE])
def test_baseline_loglikelihoods_match_lm_eval_hf_backend(embedded, data_dir, spec):
    """Same documents through lm-eval's HFLM and through our baseline (batched, left-padded)."""
    from lm_eval.models.huggingface import HFLM

    docs = spec.load_docs()
    hf = HFLM(pretrained=embedded.model, tokenizer=embedded.tokenizer, device="cpu", batch_size=DOCS)
    ours = ADAPTERS.get("baseline")().wrap(embedded, batch_size=4)
    expected, got = _responses(hf, spec, docs), _responses(ours, spec, docs)
    assert sorted(got) == sorted(expected) == list(range(DOCS))
    for doc_id, want in expected.items():
        assert len(got[doc_id]) == len(spec.choices)
        for (lp, greedy), (want_lp, want_greedy) in zip(got[doc_id], want):
            assert lp == pytest.approx(want_lp, abs=2e-3), (spec.name, doc_id)
            assert greedy == want_greedy
        predicted = spec.predict([lp for lp, _ in got[doc_id]])
        assert predicted == pytest.approx(spec.predict([lp for lp, _ in want]), abs=1e-3)


def test_depth_subnet_scores_differ_from_the_baseline_on_embedded(embedded, data_dir):
    spec = next(t for t in GLUE if t.name == "sst2")
    docs = spec.load_docs()
    base = _responses(ADAPTERS.get("baseline")().wrap(embedded, batch_size=4), spec, docs)
    variant = ADAPTERS.get("depth_subnet")({"layers": 16}).wrap(embedded, batch_size=4)
    sub = _responses(variant, spec, docs)
    assert all(abs(a[0] - b[0]) > 1e-2 for d in base for a, b in zip(base[d], sub[d]))
    assert variant.stats[("sst2", 0, 0, 0)].counters == {"layers_executed": 16.0}
