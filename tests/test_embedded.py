"""Tests on the embedded SmolLM2-135M-Instruct (slow: the first run converts the GGUF, ~45 s)."""

from __future__ import annotations

import pytest
import torch

from harness.adapters import ADAPTERS
from harness.generation import GenerationSettings, eos_ids, generate
from harness.models import param_bytes

pytestmark = pytest.mark.slow

QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "What is 7 times 8?",
]


def _prompts(base):
    tok = base.tokenizer
    texts = [
        tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in QUESTIONS
    ]
    return texts, [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_canonical_id_has_no_path(embedded):
    assert embedded.canonical_id.startswith("embedded:SmolLM2-135M-Instruct-Q4_1@")
    assert "/" not in embedded.canonical_id


def test_baseline_equals_transformers_generate(embedded):
    texts, ids = _prompts(embedded)
    variant = ADAPTERS.get("baseline")().wrap(embedded, batch_size=2)
    ours = generate(variant.model, embedded.tokenizer, ids, GenerationSettings(40, eos_token_ids=eos_ids(embedded.model, embedded.tokenizer)))
    enc = embedded.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = embedded.model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=embedded.tokenizer.pad_token_id)
    eos = set(eos_ids(embedded.model, embedded.tokenizer))
    for i, r in enumerate(ours):
        expected = ref[i, enc["input_ids"].shape[1] :].tolist()
        cut = next((j for j, t in enumerate(expected) if t in eos), len(expected))
        assert r.token_ids == expected[:cut]


def test_think_budget_caps_and_differs_from_baseline(embedded):
    _, ids = _prompts(embedded)
    settings = GenerationSettings(160, eos_token_ids=eos_ids(embedded.model, embedded.tokenizer))
    free = generate(embedded.model, embedded.tokenizer, ids[:1], settings)[0]
    adapter = ADAPTERS.get("think_budget")({"max_reasoning_tokens": 16, "max_answer_tokens": 24})
    variant = adapter.wrap(embedded)
    capped = generate(variant.model, embedded.tokenizer, ids[:1], settings, variant.policy_factory())[0]
    assert free.output_tokens > 16 + 24  # the baseline runs longer than the whole budget
    assert capped.output_tokens <= 16 + 24
    assert "Final answer: \\boxed{" in capped.text
    assert capped.text != free.text and capped.token_ids[:16] == free.token_ids[:16]
    assert capped.counters["budget_forced"] == 1.0


def test_think_modes_calibrated_budgets_order_reasoning(embedded, monkeypatch, tmp_path):
    """Low < Medium < High measured reasoning tokens at budgets calibrated on GSM8K's last
    problems, each mode's output differs, and NoThinking (plain-text format here) reasons 0."""
    import json
    import os
    from pathlib import Path

    from conftest import SHARED_DATA

    data = Path(os.environ.get("HARNESS_DATA_DIR") or SHARED_DATA)  # a worktree has no ../shared
    if not (data / "gsm8k").is_dir():
        pytest.skip(f"offline data not found at {data}")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data))

    from harness.adapters.base import CellContext
    from harness.adapters.reasoning_format import detect_format
    from harness.tasks import get_task

    tok = embedded.tokenizer
    assert detect_format(tok).kind == "plain_text"  # SmolLM2 has no think tokens
    spec = get_task("gsm8k")
    docs = spec.load_docs()
    cap, context = 96, CellContext(limit=2, batch_size=4, max_new_tokens=96, files={})
    settings = GenerationSettings(cap, eos_token_ids=eos_ids(embedded.model, tok))
    records, reasoning, texts = {}, {}, {}
    for mode in ("high", "medium", "low", "no_thinking"):
        params = {"mode": mode, "max_answer_tokens": 24} | ({"calibration_docs": 4} if mode != "no_thinking" else {})
        adapter = ADAPTERS.get("think_budget")(params)
        columns = adapter.prepare(embedded, spec, docs, context)
        records[mode] = json.loads(columns["calibration_json"]) if columns else None
        variant = adapter.wrap(embedded, batch_size=2, max_new_tokens=cap)
        prompts = [
            tok(variant.apply_chat_template([{"role": "user", "content": spec.prompt(d)}]), add_special_tokens=False)[
                "input_ids"
            ]
            for d in docs[:2]
        ]
        outs = generate(variant.model, tok, prompts, settings, variant.policy_factory())
        reasoning[mode] = sum(o.counters["reasoning_tokens"] for o in outs) / len(outs)
        budget = records[mode]["reasoning_budget"] if records[mode] else 0
        for o in outs:  # reasoning stops at the budget, where the answer cue is forced
            assert o.counters["reasoning_tokens"] <= budget
            if o.counters["reasoning_tokens"] == budget and mode != "no_thinking":
                assert o.counters["budget_forced"] == 1.0 and "Final answer: \\boxed{" in o.text
        texts[mode] = [o.text for o in outs]
    high = records["high"]
    assert high["slice"] == f"docs[{len(docs) - 4}:{len(docs)}]" and high["n"] == 4
    assert records["medium"]["mean_reasoning_tokens"] == high["mean_reasoning_tokens"]  # one calibration
    assert records["medium"]["reused"] and records["low"]["reused"]
    assert records["low"]["reasoning_budget"] < records["medium"]["reasoning_budget"] < high["reasoning_budget"]
    assert reasoning["low"] < reasoning["medium"] < reasoning["high"]
    assert reasoning["no_thinking"] == 0.0 and all(t.startswith("Final answer: \\boxed{") for t in texts["no_thinking"])
    modes = list(texts)
    assert all(texts[a] != texts[b] for i, a in enumerate(modes) for b in modes[i + 1 :])


def test_int8_compression_and_agreement(embedded):
    variant = ADAPTERS.get("int8")().wrap(embedded)
    ratio = param_bytes(embedded.model) / variant.param_bytes
    assert 2.3 < ratio < 2.6  # ~106 M of 134.5 M parameters are decoder Linear weights
    _, ids = _prompts(embedded)
    agree = total = 0
    with torch.no_grad():
        for p in ids:
            x = torch.tensor([p])
            ref, q = embedded.model(x).logits, variant.model(x).logits
            assert not torch.equal(ref, q)
            agree += (ref.argmax(-1) == q.argmax(-1)).sum().item()
            total += ref.shape[1]
    assert agree / total > 0.85


def test_baseline_matches_lm_eval_hf_backend(embedded, data_dir):
    """Parity: same prompts and settings through lm-eval's HFLM and through our baseline."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from harness.tasks import get_task
    from harness.tasks.lm_eval_bridge import build_task

    spec = get_task("gsm8k")
    docs = spec.load_docs()

    def texts(model) -> dict[int, str]:
        out = lm_eval.simple_evaluate(
            model=model, tasks=[build_task(spec, 48, docs)], limit=3, apply_chat_template=True,
            log_samples=True, bootstrap_iters=0, verbosity="ERROR",
        )
        return {s["doc_id"]: s["filtered_resps"][0] for s in out["samples"]["gsm8k"]}

    hf = HFLM(pretrained=embedded.model, tokenizer=embedded.tokenizer, device="cpu", batch_size=1)
    ours = ADAPTERS.get("baseline")().wrap(embedded, batch_size=1, max_new_tokens=48)
    expected, got = texts(hf), texts(ours)
    assert len(expected) == 3 and all(expected.values())
    assert got == expected


def test_early_exit_on_embedded_skips_layers(embedded):
    _, ids = _prompts(embedded)
    settings = GenerationSettings(16, eos_token_ids=[])
    variant = ADAPTERS.get("early_exit")({"tau": 0.98, "min_layers": 8}).wrap(embedded)
    out = generate(variant.model, embedded.tokenizer, ids[1:], settings, variant.policy_factory())[0]
    depth = len(embedded.model.model.layers)
    assert 8 <= out.counters["layers_executed_mean"] < depth


def test_depth_subnet_on_embedded_is_smaller_and_different(embedded):
    _, ids = _prompts(embedded)
    settings = GenerationSettings(16, eos_token_ids=[])
    full = generate(embedded.model, embedded.tokenizer, ids[1:], settings)[0]
    variant = ADAPTERS.get("depth_subnet")({"layers": 20}).wrap(embedded)
    sub = generate(variant.model, embedded.tokenizer, ids[1:], settings, variant.policy_factory())[0]
    assert sub.token_ids != full.token_ids and sub.counters["layers_executed"] == 20.0
    assert variant.param_bytes < param_bytes(embedded.model)


def test_speculative_self_draft_equals_baseline_on_gsm8k(embedded, data_dir):
    """Lossless on a real GSM8K prompt: a depth_subnet draft, verified by the full model."""
    from harness.tasks import get_task

    spec = get_task("gsm8k")
    doc = spec.load_docs()[0]
    tok = embedded.tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": spec.prompt(doc)}], tokenize=False, add_generation_prompt=True)
    ids = [tok(text, add_special_tokens=False)["input_ids"]]
    settings = GenerationSettings(64, eos_token_ids=eos_ids(embedded.model, tok))
    reference = generate(embedded.model, tok, ids, settings)[0]
    variant = ADAPTERS.get("speculative")({"draft": "depth_subnet", "draft_layers": 24, "num_draft_tokens": 3}).wrap(embedded)
    out = generate(variant.model, tok, ids, settings, variant.policy_factory())[0]
    assert out.token_ids == reference.token_ids
    c = out.counters
    assert 0 < c["draft_tokens_accepted"] < c["draft_tokens_proposed"]
    assert c["target_forward_calls"] < out.output_tokens
