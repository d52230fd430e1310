"""Adapter contract and technique tests on tiny random Llama models (no download)."""

from __future__ import annotations

import pytest
import torch

from harness.adapters import ADAPTERS
from harness.adapters.int8 import quantized_linear_names
from harness.adapters.think_budget import BudgetPolicy, ThinkBudgetParams, boxed_closed
from harness.generation import GenerationSettings, generate
from harness.registry import UnknownNameError
from harness.testing import TinyBase

# Every registered generation adapter with params that exercise it on a tiny model.
CONTRACT_CASES = {
    "baseline": {},
    "think_budget": {"max_reasoning_tokens": 4, "max_answer_tokens": 40},
    "int8": {"mode": "weight_only"},
    "depth_subnet": {"layers": 2},
    "early_exit": {"tau": 0.5, "min_layers": 1},
    "speculative": {"draft": "depth_subnet", "draft_layers": 2, "num_draft_tokens": 3},
}


def test_every_registered_adapter_has_a_contract_case():
    assert sorted(CONTRACT_CASES) == ADAPTERS.names()


@pytest.mark.parametrize("name", sorted(CONTRACT_CASES))
def test_contract_wrap_generate_counters_and_base_untouched(name):
    base = TinyBase(seed=2)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    adapter_cls = ADAPTERS.get(name)
    assert adapter_cls.name == name
    assert adapter_cls.arxiv is None or adapter_cls.paper, "a cited adapter names its paper"
    variant = adapter_cls(CONTRACT_CASES[name]).wrap(base, batch_size=2, max_new_tokens=16)
    texts = ["abc", "hello there"] if adapter_cls.batchable else ["hello there"]
    prompts = [base.tokenizer(p, add_special_tokens=False)["input_ids"] for p in texts]
    results = generate(
        variant.model, base.tokenizer, prompts, GenerationSettings(16, eos_token_ids=[]), variant.policy_factory()
    )
    assert all(r.output_tokens > 0 for r in results)
    for r in results:
        assert set(r.counters) == set(adapter_cls.counters)
    assert variant.param_bytes > 0
    after = base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), f"{name} mutated the shared base model"


def test_unknown_adapter_suggests_close_names():
    with pytest.raises(UnknownNameError) as info:
        ADAPTERS.get("baslein")
    assert "did you mean 'baseline'" in str(info.value)


def test_params_reject_unknown_keys():
    with pytest.raises(Exception, match="extra"):
        ADAPTERS.get("think_budget")({"max_reasoning_token": 3})


# --- think_budget ----------------------------------------------------------------------------


def test_boxed_closed_scanner():
    assert boxed_closed("42}") and boxed_closed("\\frac{1}{2}} tail")
    assert not boxed_closed("\\frac{1}{2") and not boxed_closed("")


def test_budget_forcing_caps_output_and_injects_cue():
    base = TinyBase(seed=3)
    tok = base.tokenizer
    params = ThinkBudgetParams(max_reasoning_tokens=5, max_answer_tokens=20, answer_cue=" ANS{")
    cue = tok(params.answer_cue, add_special_tokens=False)["input_ids"]
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in ["long question?", "q"]]
    settings = GenerationSettings(max_new_tokens=64, eos_token_ids=[])
    baseline = generate(base.model, tok, prompts, settings)
    budget = generate(base.model, tok, prompts, settings, BudgetPolicy(params, cue, tok))
    for free, capped in zip(baseline, budget):
        assert free.output_tokens == 64  # the baseline runs past the budget
        assert capped.output_tokens <= params.max_reasoning_tokens + params.max_answer_tokens
        assert capped.token_ids[:5] == free.token_ids[:5]  # same reasoning until the budget
        assert capped.token_ids[5 : 5 + len(cue)] == cue  # then the cue
        assert " ANS{" in capped.text and capped.text != free.text
        assert capped.counters == {
            "reasoning_tokens": 5.0,
            "answer_tokens": float(capped.output_tokens - 5),
            "budget_forced": 1.0,
        }


def test_budget_not_forced_when_model_stops_first():
    base = TinyBase(seed=3)
    tok = base.tokenizer
    prompt = [tok("q", add_special_tokens=False)["input_ids"]]
    free = generate(base.model, tok, prompt, GenerationSettings(8, eos_token_ids=[]))[0]
    # Pretend the first token not seen before is EOS: the model then stops after k tokens.
    k = next(i for i in range(1, 5) if free.token_ids[i] not in free.token_ids[:i])
    params = ThinkBudgetParams(max_reasoning_tokens=5, max_answer_tokens=20, answer_cue=" ANS{")
    cue = tok(params.answer_cue, add_special_tokens=False)["input_ids"]
    settings = GenerationSettings(64, eos_token_ids=[free.token_ids[k]])
    out = generate(base.model, tok, prompt, settings, BudgetPolicy(params, cue, tok))[0]
    assert out.output_tokens == k and out.counters["budget_forced"] == 0.0
    assert out.counters["reasoning_tokens"] == float(k)


def test_answer_budget_must_exceed_cue():
    tok = TinyBase().tokenizer
    params = ThinkBudgetParams(max_reasoning_tokens=5, max_answer_tokens=3, answer_cue="Final: {")
    with pytest.raises(ValueError, match="no room"):
        BudgetPolicy(params, tok(params.answer_cue, add_special_tokens=False)["input_ids"], tok)


# --- int8 ----------------------------------------------------------------------------------


def test_int8_quantizes_every_decoder_linear_and_shrinks():
    from harness.models import param_bytes

    base = TinyBase(seed=4)
    targets = quantized_linear_names(base.model)
    assert len(targets) == 4 * 7  # q, k, v, o, gate, up, down per layer
    variant = ADAPTERS.get("int8")().wrap(base)
    modules = dict(variant.model.named_modules())
    for name in targets:
        weight = modules[name].weight
        assert type(weight) is not torch.nn.Parameter or weight.dtype == torch.int8, f"{name} not quantized"
        assert weight.__class__.__name__ != "Parameter"
    assert modules["lm_head"].weight.dtype == torch.float32  # head / tied embedding untouched
    ratio = param_bytes(base.model) / variant.param_bytes
    linear = sum(modules[n].weight.numel() for n in targets)
    total = sum(p.numel() for p in base.model.parameters())
    # fp32 → int8 on the linear share; scales and serialization overhead weigh a lot on a
    # model this small (the embedded-model test checks the ~2.44x figure).
    ideal = total * 4 / ((total - linear) * 4 + linear * 1)
    assert 1.5 < ratio < ideal


def test_int8_changes_logits_but_keeps_top1_mostly():
    base = TinyBase(seed=5)
    variant = ADAPTERS.get("int8")().wrap(base)
    ids = torch.tensor([base.tokenizer("The quick brown fox jumps", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        ref, q = base.model(ids).logits, variant.model(ids).logits
    assert not torch.equal(ref, q)
    agreement = (ref.argmax(-1) == q.argmax(-1)).float().mean().item()
    assert agreement >= 0.8


# --- depth_subnet ----------------------------------------------------------------------------


def test_depth_subnet_runs_exactly_k_layers_and_changes_logits():
    base = TinyBase(seed=6, layers=4)
    variant = ADAPTERS.get("depth_subnet")({"layers": 2}).wrap(base)
    calls = []
    hooks = [layer.register_forward_hook(lambda m, i, o, n=n: calls.append(n)) for n, layer in enumerate(base.model.model.layers)]
    ids = torch.tensor([base.tokenizer("depth test", add_special_tokens=False)["input_ids"]])
    try:
        with torch.no_grad():
            sub = variant.model(ids).logits
            assert calls == [0, 1]  # layers 2 and 3 never ran
            calls.clear()
            full = base.model(ids).logits
            assert calls == [0, 1, 2, 3]  # the shared base is still the whole model
    finally:
        for h in hooks:
            h.remove()
    assert not torch.allclose(sub, full)
    assert variant.param_bytes < __import__("harness.models", fromlist=["param_bytes"]).param_bytes(base.model)
    # the sub-model is the base's first k layers + final norm + head, computed by hand
    with torch.no_grad():
        inner = base.model.model
        h = inner.embed_tokens(ids)
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        pe = inner.rotary_emb(h, pos)
        for layer in inner.layers[:2]:
            h = layer(h, attention_mask=None, position_ids=pos, position_embeddings=pe)
            h = h[0] if isinstance(h, tuple) else h
        manual = base.model.lm_head(inner.norm(h))
    assert torch.allclose(sub, manual, atol=1e-4)


def test_depth_subnet_rejects_too_many_layers():
    with pytest.raises(ValueError, match="exceeds"):
        ADAPTERS.get("depth_subnet")({"layers": 9}).wrap(TinyBase(layers=4))


# --- early_exit ------------------------------------------------------------------------------


def _exit_run(base, params, tokens=12):
    from harness.adapters.early_exit import ExitPolicy, EarlyExitParams

    ids = [base.tokenizer("early exit prompt", add_special_tokens=False)["input_ids"]]
    policy = ExitPolicy(EarlyExitParams(**params))
    calls = []
    hooks = [layer.register_forward_hook(lambda m, i, o: calls.append(1)) for layer in base.model.model.layers]
    try:
        out = generate(base.model, base.tokenizer, ids, GenerationSettings(tokens, eos_token_ids=[]), policy)[0]
    finally:
        for h in hooks:
            h.remove()
    return out, len(calls)


def test_early_exit_with_unreachable_tau_equals_full_model():
    base = TinyBase(seed=7, layers=6)
    ids = [base.tokenizer("early exit prompt", add_special_tokens=False)["input_ids"]]
    full = generate(base.model, base.tokenizer, ids, GenerationSettings(12, eos_token_ids=[]))[0]
    out, calls = _exit_run(base, {"tau": 1.5, "min_layers": 1})
    assert out.token_ids == full.token_ids
    assert out.counters["layers_executed_mean"] == 6.0
    assert calls == 6 * 12  # prefill + 11 decode steps, every layer each time


def test_early_exit_skips_layers_for_real():
    base = TinyBase(seed=7, layers=6)
    out, calls = _exit_run(base, {"tau": -1.0, "min_layers": 2})  # always saturated: exit at layer 2
    assert out.counters["layers_executed_mean"] == 2.0
    assert calls == 6 + 2 * 11  # the prefill runs all 6 layers; each decode step only 2
    full = generate(base.model, base.tokenizer, [base.tokenizer("early exit prompt", add_special_tokens=False)["input_ids"]], GenerationSettings(12, eos_token_ids=[]))[0]
    assert out.token_ids != full.token_ids


def test_early_exit_fills_skipped_layers_kv_cache():
    from harness.adapters.early_exit import EarlyExitParams, ExitPolicy

    base = TinyBase(seed=8, layers=4)
    ids = torch.tensor([base.tokenizer("kv fill", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = base.model(input_ids=ids, use_cache=True)
        cache = out["cache"] if "cache" in out else out["past_key_values"]
        before = [cache.layers[i].keys.shape[-2] for i in range(4)]
        policy = ExitPolicy(EarlyExitParams(tau=-1.0, min_layers=1))
        step = torch.tensor([[5]])
        pos = torch.tensor([[ids.shape[1]]])
        policy.forward(base.model, input_ids=step, position_ids=pos, attention_mask=None, cache=cache)
    after = [cache.layers[i].keys.shape[-2] for i in range(4)]
    assert after == [b + 1 for b in before]  # every layer, skipped ones included, got this token's K/V
