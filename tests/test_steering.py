"""``steering`` (Efficiency Steering, arXiv 2506.15647) on tiny models, and one slow check on the
embedded model: alpha 0 is the base exactly, the shift grows with |alpha| on held-out prompts,
the calibration is held out and reused, and the shared base keeps its modules, hooks and weights."""

from __future__ import annotations

import json

import pytest
import torch

from harness.adapters import ADAPTERS
from harness.adapters.base import CellContext
from harness.adapters.steering import CACHE_FILE, SteeredLayer
from harness.generation import GenerationSettings, generate
from harness.testing import TinyBase


class ToySpec:
    name, version = "toy", "1"

    @staticmethod
    def prompt(doc):
        return doc["q"]


TOY_DOCS = [{"q": f"Question {i}: what is {i} + {2 * i}?"} for i in range(12)]
HELD_OUT = ["Question 1: what is 1 + 2?", "How many legs do 3 cats have?", "Sum 40 and 2."]  # not docs[8:12]
PARAMS = {"layer": 1, "width": 2, "calibration_docs": 4, "calibration_tokens": 6}


def _prepared(base, alpha, files=None):
    adapter = ADAPTERS.get("steering")({**PARAMS, "alpha": alpha})
    columns = adapter.prepare(base, ToySpec, TOY_DOCS, CellContext(limit=8, batch_size=4, max_new_tokens=16, files=files))
    return adapter, columns


def _ids(tok, texts):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def _kl(ref_logits, logits):
    """KL(base ‖ steered) of the next-token distributions, nats."""
    p, q = torch.log_softmax(ref_logits.float(), -1), torch.log_softmax(logits.float(), -1)
    return (p.exp() * (p - q)).sum(-1).mean().item()


HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs")


def _hooks(base) -> dict:
    """Every hook on the base's modules (``transformers`` installs output-capturing hooks of its own
    the first time a model is asked for hidden states; a shared model may carry them already)."""
    return {(name, kind): list(getattr(module, kind, {}).values())
            for name, module in base.model.named_modules() for kind in HOOKS}


def _assert_base_clean(base, layers_before, state_before, hooks_before=None):
    assert list(base.model.model.layers) == layers_before  # the very same layer objects
    assert not any(isinstance(m, SteeredLayer) for m in base.model.modules())
    if hooks_before is None:  # a fresh model: no hook at all
        for (name, kind), hooks in _hooks(base).items():
            assert not hooks, f"{name}.{kind} left on the base"
    else:  # a shared model: exactly the hooks it had before the cell
        assert _hooks(base) == hooks_before
    after = base.model.state_dict()
    assert all(torch.equal(state_before[k], after[k]) for k in state_before)


def test_alpha_zero_equals_baseline_exactly_and_base_stays_clean():
    base = TinyBase(seed=4)
    layers, state = list(base.model.model.layers), {k: v.clone() for k, v in base.model.state_dict().items()}
    adapter, _ = _prepared(base, 0.0)
    variant = adapter.wrap(base, batch_size=2, max_new_tokens=16)
    assert [type(m) is SteeredLayer for m in variant.model.model.layers] == [False, True, True, False]
    prompts = _ids(base.tokenizer, HELD_OUT)
    settings = GenerationSettings(16, eos_token_ids=[])
    ref = generate(base.model, base.tokenizer, prompts, settings)
    out = generate(variant.model, base.tokenizer, prompts, settings, variant.policy_factory(), batch_size=2)
    assert [o.token_ids for o in out] == [r.token_ids for r in ref]
    x = torch.tensor([prompts[1]])
    with torch.no_grad():
        assert torch.equal(variant.model(x).logits, base.model(x).logits)
    assert out[0].counters["steered_layers"] == 2.0 and out[0].counters["alpha"] == 0.0
    assert 0 < out[0].counters["calibration_concise_token_share"] < 1
    _assert_base_clean(base, layers, state)


def test_shift_grows_with_abs_alpha_on_held_out_prompts():
    base = TinyBase(seed=4)
    layers, state = list(base.model.model.layers), {k: v.clone() for k, v in base.model.state_dict().items()}
    x = torch.tensor(_ids(base.tokenizer, HELD_OUT[:1]))
    with torch.no_grad():
        ref = base.model(x).logits[:, -1]
    files: dict[str, bytes] = {}
    kl = {}
    for alpha in (-0.4, -0.2, -0.1, 0.1, 0.2, 0.4):
        adapter, _ = _prepared(base, alpha, files)
        with torch.no_grad():
            kl[alpha] = _kl(ref, adapter.wrap(base).model(x).logits[:, -1])
    assert 0 < kl[0.1] < kl[0.2] < kl[0.4]
    assert 0 < kl[-0.1] < kl[-0.2] < kl[-0.4]
    _assert_base_clean(base, layers, state)


def test_calibration_is_held_out_recorded_and_reused(monkeypatch):
    import harness.adapters.steering as steering

    base = TinyBase(seed=5)
    files: dict[str, bytes] = {}
    first, columns = _prepared(base, 0.2, files)
    record = json.loads(columns["calibration_json"])
    assert (record["slice"], record["n"], record["layer"], record["steered"]) == ("docs[8:12]", 4, 1, [1, 2])
    assert record["concise_tokens"] + record["verbose_tokens"] <= 2 * 4 * (6 + 1)
    assert columns["calibration_time_s"] > 0 and not record["reused"] and CACHE_FILE in files
    monkeypatch.setattr(steering, "measure_direction", lambda *a, **k: pytest.fail("calibrated twice"))
    second, again = _prepared(base, -0.2, files)  # another alpha: same direction, from the kept file
    assert again["calibration_time_s"] == 0.0 and json.loads(again["calibration_json"])["reused"]
    assert torch.equal(first.calibration.vector(), second.calibration.vector())
    assert abs(first.calibration.vector().norm().item() - record["residual_norm"]) < 1e-3
    with pytest.raises(ValueError, match="calibration slice"):
        ADAPTERS.get("steering")(PARAMS).prepare(base, ToySpec, TOY_DOCS, CellContext(9, 4, 16, {}))
    with pytest.raises(RuntimeError, match="prepare"):
        ADAPTERS.get("steering")(PARAMS).wrap(base)
    assert ADAPTERS.get("steering")(PARAMS).needs_preparation()
    with pytest.raises(ValueError, match="exceed"):
        ADAPTERS.get("steering")({**PARAMS, "layer": 3}).prepare(base, ToySpec, TOY_DOCS, CellContext(8, 4, 16, {}))


def test_steered_rows_join_and_leave_like_static_batches():
    """Continuous batching (2 slots, 3 prompts, ragged caps) gives each row what it gets alone."""
    base = TinyBase(seed=6)
    adapter, _ = _prepared(base, 0.3)
    variant = adapter.wrap(base, batch_size=2, max_new_tokens=12)
    prompts = _ids(base.tokenizer, HELD_OUT)
    settings = GenerationSettings(12, eos_token_ids=[])
    together = generate(variant.model, base.tokenizer, prompts, settings, variant.policy_factory(),
                        max_new_tokens=[4, 12, 8], batch_size=2)
    alone = [generate(variant.model, base.tokenizer, [p], GenerationSettings(c, eos_token_ids=[]),
                      variant.policy_factory())[0] for p, c in zip(prompts, [4, 12, 8])]
    assert [o.token_ids for o in together] == [a.token_ids for a in alone]
    plain = generate(base.model, base.tokenizer, prompts, settings)
    assert any(o.token_ids != p.token_ids[: len(o.token_ids)] for o, p in zip(together, plain))


@pytest.mark.slow
def test_embedded_kl_grows_with_alpha_on_held_out_gsm8k(embedded, data_dir):
    """One forward per alpha on a GSM8K problem outside the calibration slice."""
    from harness.tasks import get_task

    spec = get_task("gsm8k")
    docs = spec.load_docs()
    tok = embedded.tokenizer
    layers = list(embedded.model.model.layers)
    state = {k: v.clone() for k, v in embedded.model.state_dict().items()}
    hooks = _hooks(embedded)  # the session's shared model: other tests' forwards may have left transformers' own
    text = tok.apply_chat_template([{"role": "user", "content": spec.prompt(docs[0])}], tokenize=False,
                                   add_generation_prompt=True)
    x = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        ref = embedded.model(x).logits[:, -1]
    context = CellContext(limit=4, batch_size=4, max_new_tokens=128, files={})
    kl = {}
    for alpha in (0.0, -0.1, -0.2, 0.1, 0.2):
        adapter = ADAPTERS.get("steering")({"alpha": alpha})
        adapter.prepare(embedded, spec, docs, context)
        with torch.no_grad():
            kl[alpha] = _kl(ref, adapter.wrap(embedded).model(x).logits[:, -1])
    assert kl[0.0] == 0.0
    assert 0 < kl[0.1] < kl[0.2] and 0 < kl[-0.1] < kl[-0.2]
    _assert_base_clean(embedded, layers, state, hooks)
