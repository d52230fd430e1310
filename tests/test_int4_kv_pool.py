"""``int4`` (torchao int4 weight-only) and ``kv_pool`` (KV-head pooling) on tiny random Llama models."""

from __future__ import annotations

import pytest
import torch

from harness.adapters import ADAPTERS
from harness.adapters.int4 import int4_layout
from harness.adapters.int8 import quantized_linear_names
from harness.adapters.kv_pool import kv_cache_bytes, pool_kv_heads
from harness.config.errors import SuiteError
from harness.generation import GenerationSettings, generate
from harness.testing import TinyBase, tiny_model

PROMPT = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])


# --- int4 --------------------------------------------------------------------------------------


def test_int4_changes_every_decoder_linear_and_is_smaller_than_int8():
    base = TinyBase(seed=2)
    variant = ADAPTERS.get("int4")({"group_size": 32}).wrap(base)
    int8 = ADAPTERS.get("int8")().wrap(base)
    names = quantized_linear_names(variant.model)
    assert len(names) == 4 * 7  # q k v o gate up down per layer
    modules = dict(variant.model.named_modules())
    for name in names:
        weight = modules[name].weight
        assert type(weight.data) is not torch.Tensor, f"{name} kept a plain weight"
        assert "Int4" in type(weight.data).__name__
    assert type(variant.model.lm_head.weight.data) is torch.Tensor  # the tied head stays full precision
    assert variant.param_bytes < int8.param_bytes < base.model.num_parameters() * 4
    assert variant.policy_factory().counters == {"quantized_linears": 28.0}
    out = variant.model(PROMPT).logits  # it runs, close to the base but not equal
    ref = base.model(PROMPT).logits
    assert out.shape == ref.shape and not torch.equal(out, ref)


def test_int4_group_size_must_divide_every_linear():
    base = TinyBase(seed=2)  # hidden 64: group 128 divides no attention input
    with pytest.raises(ValueError, match="group_size=128 does not divide"):
        ADAPTERS.get("int4")({"group_size": 128}).wrap(base)
    with pytest.raises(ValueError):
        ADAPTERS.get("int4")({"group_size": 48})


def test_int4_device_check(monkeypatch):
    assert int4_layout("cpu", "fp32") == "opaque_cpu"
    with pytest.raises(ValueError, match="needs dtype bf16"):
        int4_layout("cuda", "fp32")
    from harness.adapters import int4

    def broken(layout, group_size):
        raise RuntimeError("no int4 kernel")

    monkeypatch.setattr(int4, "_config", broken)
    int4_layout.cache_clear()
    try:
        with pytest.raises(ValueError, match="needs a GPU"):
            ADAPTERS.get("int4")().check_device("cpu", "fp32")
    finally:
        int4_layout.cache_clear()


def test_eval_kind_refuses_a_device_before_loading(monkeypatch):
    from types import SimpleNamespace

    from harness.kinds.eval import EvalKind

    cell = SimpleNamespace(variant=SimpleNamespace(name="q4", dtype="fp32", adapter="int4"), params={"group_size": 32})
    EvalKind().check_device([cell], "cpu")  # a CPU layout exists here
    with pytest.raises(SuiteError, match="variant 'q4' on cuda: .*bf16"):
        EvalKind().check_device([cell], "cuda")


# --- kv_pool -----------------------------------------------------------------------------------


def _greedy(model, tok, n=24):
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in ["abc", "hello there"]]
    return [r.token_ids for r in generate(model, tok, prompts, GenerationSettings(n, eos_token_ids=[]))]


def test_kv_pool_to_own_head_count_equals_baseline():
    base = TinyBase(seed=2)
    variant = ADAPTERS.get("kv_pool")({"num_kv_heads": 2}).wrap(base)
    assert torch.equal(variant.model(PROMPT).logits, base.model(PROMPT).logits)
    assert _greedy(variant.model, base.tokenizer) == _greedy(base.model, base.tokenizer)


def test_kv_pool_to_one_head_shrinks_the_measured_kv_cache():
    base = TinyBase(seed=2)
    variant = ADAPTERS.get("kv_pool")({"num_kv_heads": 1}).wrap(base)
    assert variant.model.config.num_key_value_heads == 1 and base.model.config.num_key_value_heads == 2
    assert kv_cache_bytes(variant.model, PROMPT) * 2 == kv_cache_bytes(base.model, PROMPT)
    assert variant.param_bytes < ADAPTERS.get("baseline")().wrap(base).param_bytes
    assert not torch.equal(variant.model(PROMPT).logits, base.model(PROMPT).logits)  # lossy in general


def test_kv_pool_keeps_the_query_to_kv_head_mapping():
    """8 query heads, 4 KV heads whose pairs (0,1) and (2,3) are made identical: pooling to 2 heads
    loses nothing, so the output equals the base's only if query head h reads pooled head h // 4."""
    model = tiny_model(seed=4, heads=8)
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
                w = proj.weight.view(4, -1, proj.weight.shape[1])
                w[1].copy_(w[0])
                w[3].copy_(w[2])
    pooled = pool_kv_heads(model, 2)
    torch.testing.assert_close(pooled(PROMPT).logits, model(PROMPT).logits, rtol=1e-5, atol=1e-5)
    swapped = pool_kv_heads(model, 2)
    for layer in swapped.model.layers:  # the same heads in the wrong order must differ
        for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
            proj.weight.data = proj.weight.data.view(2, -1, proj.weight.shape[1]).flip(0).reshape(proj.weight.shape)
    assert not torch.allclose(swapped(PROMPT).logits, model(PROMPT).logits, atol=1e-3)


def test_kv_pool_must_divide_the_head_count():
    with pytest.raises(ValueError, match="num_kv_heads=3 does not divide the model's 2 KV heads"):
        ADAPTERS.get("kv_pool")({"num_kv_heads": 3}).wrap(TinyBase())
