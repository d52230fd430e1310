"""``entropy_switch`` tests: scripted fake models for the switching rule, tiny random Llama
models for exactness and forward-call counts, and one slow test on the embedded model."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from harness.adapters import ADAPTERS
from harness.adapters.depth_subnet import truncate_layers
from harness.adapters.entropy_switch import (
    LARGE,
    SMALL,
    EntropySwitchParams,
    SwitchPolicy,
    check_same_vocab,
    entropy_bits,
    parameter_count,
)
from harness.generation import GenerationSettings, eos_ids, generate
from harness.testing import TinyBase, tiny_tokenizer

INF = float("inf")


# --- the switching rule, on scripted models ---------------------------------------------------


class ScriptedLM(torch.nn.Module):
    """A fake causal LM: always predicts ``token``, confidently (≈0 bits) except for the
    output positions in ``uncertain`` (position of the token being predicted, counted from
    the end of the prompt), where the distribution is nearly uniform. Records every call's
    position ids."""

    def __init__(self, token: int, uncertain: set[int], prompt_len: int, vocab: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # gives the loop a device
        self.token, self.uncertain, self.prompt_len, self.vocab = token, uncertain, prompt_len, vocab
        self.fed: list[list[int]] = []

    def forward(self, input_ids, position_ids, attention_mask=None, use_cache=True, logits_to_keep=0, cache=None):
        positions = position_ids[0].tolist()
        self.fed.append(positions)
        step = positions[-1] + 1 - self.prompt_len  # index of the output token these logits predict
        logits = torch.zeros(1, 1, self.vocab)
        logits[0, 0, self.token] = 0.1 if step in self.uncertain else 50.0
        return {"logits": logits, "cache": object()}


def _scripted(params, small_uncertain, large_uncertain=frozenset(), tokens=10, prompt="abc"):
    tok = tiny_tokenizer()
    vocab = len(tok)
    large = ScriptedLM(7, set(large_uncertain), len(prompt), vocab)
    small = ScriptedLM(5, set(small_uncertain), len(prompt), vocab)
    policy = SwitchPolicy(EntropySwitchParams(**params), small, p_large=100, p_small=40)
    ids = [tok(prompt, add_special_tokens=False)["input_ids"]]
    out = generate(large, tok, ids, GenerationSettings(tokens, eos_token_ids=[]), policy)[0]
    return out, policy, large, small


def test_entropy_bits_of_known_distributions():
    assert entropy_bits(torch.zeros(8)).item() == pytest.approx(3.0)  # uniform over 8
    assert entropy_bits(torch.tensor([0.0, -1e4])).item() == pytest.approx(0.0, abs=1e-6)
    assert entropy_bits(torch.tensor([0.0, 0.0, -INF])).item() == pytest.approx(1.0)  # masked logit
    two = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    assert entropy_bits(two).tolist() == pytest.approx([1.5])


def test_escalates_at_the_uncertain_token_and_returns_after_min_dwell():
    out, policy, large, small = _scripted({"tau": 2.0, "window": 1, "min_dwell": 2}, small_uncertain={3, 4})
    # small 0-2; small unsure at 3 → large emits 3 (and 4); after 2 calm large tokens, small again
    assert policy.emitters == [SMALL] * 3 + [LARGE] * 2 + [SMALL] * 5
    assert out.token_ids == [5, 5, 5, 7, 7, 5, 5, 5, 5, 5]
    p = len("abc")
    # the large model caught up once over everything it had not seen (prompt + 3 tokens), then one step
    assert large.fed == [list(range(0, p + 3)), [p + 3]]
    # the small model: prefill, 3 steps, the evaluation it lost at step 3, then a catch-up over the
    # two tokens the large model handled, then one step per token
    assert small.fed == [list(range(0, p)), [p], [p + 1], [p + 2], [p + 3, p + 4], [p + 5], [p + 6], [p + 7], [p + 8]]
    assert policy.calls == {LARGE: 2, SMALL: 9}
    assert out.counters == {
        "large_model_token_share": 0.2,
        "switches": 2.0,
        "relative_cost": pytest.approx((2 * 100 + 8 * 40) / (10 * 100)),
    }


def test_rolling_window_smooths_a_one_token_spike():
    uncertain_bits = math.log2(len(tiny_tokenizer()))  # ≈ the near-uniform entropy
    tau = 0.75 * uncertain_bits
    spike = {"tau": tau, "min_dwell": 1}
    out1, *_ = _scripted({**spike, "window": 1}, small_uncertain={4})
    out3, *_ = _scripted({**spike, "window": 3}, small_uncertain={4})
    assert out1.counters["large_model_token_share"] == 0.1 and out1.counters["switches"] == 2.0
    assert out3.counters["large_model_token_share"] == 0.0 and out3.counters["switches"] == 0.0
    out3b, policy, *_ = _scripted({**spike, "window": 3}, small_uncertain={4, 5, 6})  # a sustained rise
    assert out3b.counters["large_model_token_share"] > 0
    assert policy.rolling_bits[6] <= tau  # the large model's calm token pulled the mean back down


def test_large_model_stays_while_it_is_uncertain_itself():
    params = {"tau": 2.0, "window": 1, "min_dwell": 2}
    out, policy, *_ = _scripted(params, small_uncertain={2}, large_uncertain={3, 4})
    # large from 2; unsure itself at 3 and 4 (the calm count restarts); calm at 5 and 6; small from 7
    assert policy.emitters == [SMALL] * 2 + [LARGE] * 5 + [SMALL] * 3
    assert out.counters["switches"] == 2.0


# --- tiny random Llama models ------------------------------------------------------------------

PROMPT = "entropy switch"


def _run(base, params, tokens=16):
    adapter = ADAPTERS.get("entropy_switch")(params)
    variant = adapter.wrap(base)
    policy = variant.policy_factory()
    ids = [base.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]]
    out = generate(variant.model, base.tokenizer, ids, GenerationSettings(tokens, eos_token_ids=[]), policy)[0]
    return out, policy, adapter


def _greedy(model, base, tokens=16):
    ids = [base.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]]
    return generate(model, base.tokenizer, ids, GenerationSettings(tokens, eos_token_ids=[]))[0].token_ids


class LayerCalls:
    """Counts forward calls of each decoder layer of ``model`` (hooks removed on exit)."""

    def __init__(self, model):
        self.layers = model.model.layers
        self.counts = [0] * len(self.layers)

    def __enter__(self):
        self.hooks = [
            layer.register_forward_hook(lambda m, i, o, n=n: self.counts.__setitem__(n, self.counts[n] + 1))
            for n, layer in enumerate(self.layers)
        ]
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()


def test_tau_minus_inf_equals_the_large_models_greedy_output():
    base = TinyBase(seed=11, layers=4)
    large, small = _greedy(base.model, base), _greedy(truncate_layers(base.model, 2), base)
    assert large != small  # otherwise the test could not tell the models apart
    with LayerCalls(base.model) as calls:
        out, policy, _ = _run(base, {"tau": -INF, "small_layers": 2})
    assert out.token_ids == large
    assert out.counters == {"large_model_token_share": 1.0, "switches": 1.0, "relative_cost": 1.0}
    # the small model ran once (its prefill, whose prediction the large model replaced)
    assert calls.counts == [1 + 16, 1 + 16, 16, 16]


def test_tau_plus_inf_equals_the_small_models_greedy_output_and_never_runs_the_large():
    base = TinyBase(seed=11, layers=4)
    small = _greedy(truncate_layers(base.model, 2), base)
    assert small != _greedy(base.model, base)
    with LayerCalls(base.model) as calls:
        out, policy, adapter = _run(base, {"tau": INF, "small_layers": 2})
    assert out.token_ids == small
    assert calls.counts == [16, 16, 0, 0]  # the large model's own layers never ran
    assert out.counters["large_model_token_share"] == 0.0 and out.counters["switches"] == 0.0
    assert out.counters["relative_cost"] == adapter.p_small / adapter.p_large < 1


def test_mixed_run_calls_the_large_model_only_for_its_own_tokens():
    base = TinyBase(seed=11, layers=4)
    _, probe, _ = _run(base, {"tau": INF, "small_layers": 2}, tokens=24)
    tau = statistics.median(probe.rolling_bits)  # tiny models: near-uniform entropies, but a spread
    with LayerCalls(base.model) as calls:
        out, policy, _ = _run(base, {"tau": tau, "small_layers": 2, "window": 2, "min_dwell": 2}, tokens=24)
    n_large = policy.emitters.count(LARGE)
    escalations = sum(1 for a, b in zip([SMALL] + policy.emitters, policy.emitters) if (a, b) == (SMALL, LARGE))
    assert 0 < n_large < 24, "the probe tau should mix the models on this seed"
    assert calls.counts[3] == policy.calls[LARGE] == n_large  # one large forward per large token, no more
    assert calls.counts[0] == n_large + (24 - n_large) + escalations  # small: its tokens + the lost evaluations
    assert out.counters["large_model_token_share"] == n_large / 24


def test_separate_small_model_loaded_by_reference(tmp_path):
    base = TinyBase(seed=12, layers=4)
    other = TinyBase(seed=13, layers=2)
    other.model.save_pretrained(tmp_path / "small")
    other.tokenizer.save_pretrained(tmp_path / "small")
    small_greedy = _greedy(other.model, base)
    assert small_greedy != _greedy(base.model, base)
    large_calls = []
    hook = base.model.register_forward_hook(lambda *a: large_calls.append(1))
    try:
        out, policy, adapter = _run(base, {"tau": INF, "small_model": str(tmp_path / "small")})
    finally:
        hook.remove()
    assert out.token_ids == small_greedy and large_calls == []
    assert adapter.p_small == parameter_count(other.model) < adapter.p_large
    from harness.models import param_bytes

    variant = adapter.wrap(base)
    assert variant.param_bytes == param_bytes(base.model) + param_bytes(adapter.small)


def test_different_vocabulary_is_a_clear_error(tmp_path):
    from transformers import AutoTokenizer

    tok = tiny_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    changed = AutoTokenizer.from_pretrained(tmp_path / "tok")
    changed.add_tokens(["<extra>"])
    check_same_vocab(tok, AutoTokenizer.from_pretrained(tmp_path / "tok"))  # same vocabulary: fine
    with pytest.raises(ValueError, match="same tokenizer|vocabularies differ"):
        check_same_vocab(tok, changed)


def test_params_are_checked():
    with pytest.raises(ValueError, match="either small_layers or small_model"):
        EntropySwitchParams(small_layers=2, small_model="embedded")
    with pytest.raises(ValueError, match="below the base"):
        ADAPTERS.get("entropy_switch")({"small_layers": 4}).wrap(TinyBase(layers=4))
    with pytest.raises(ValueError, match="not found"):
        ADAPTERS.get("entropy_switch")({"small_model": "/no/such/folder"}).check(64)
    assert ADAPTERS.get("entropy_switch").batchable is False


# --- the embedded model (slow) -----------------------------------------------------------------

EMBEDDED_QUESTIONS = [
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
    "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
    "per fresh duck egg. How much in dollars does she make every day at the farmers' market?",
    "What is the smallest positive integer n such that 17n is congruent to 1234 modulo 7?",
]


@pytest.mark.slow
def test_median_entropy_tau_mixes_the_models_on_the_embedded_model(embedded):
    tok = embedded.tokenizer
    prompts = [
        tok(tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False)["input_ids"]
        for q in EMBEDDED_QUESTIONS
    ]
    settings = GenerationSettings(48, eos_token_ids=eos_ids(embedded.model, tok))
    adapter = ADAPTERS.get("entropy_switch")
    probe = adapter({"tau": INF, "small_layers": 16}).wrap(embedded)
    measured = []
    for ids in prompts:
        policy = probe.policy_factory()
        generate(probe.model, tok, [ids], settings, policy)
        measured += policy.rolling_bits
    tau = statistics.median(measured)
    variant = adapter({"tau": tau, "small_layers": 16}).wrap(embedded)
    shares = []
    for ids in prompts:
        out = generate(variant.model, tok, [ids], settings, variant.policy_factory())[0]
        shares.append(out.counters["large_model_token_share"])
        assert out.counters["switches"] >= 1
        assert out.counters["relative_cost"] < 1.0
    share = sum(shares) / len(shares)
    assert 0.0 < share < 1.0, (tau, shares)
