"""``swireasoning`` tests: the switching rule on scripted entropies, the math-token mask, exactness
against greedy decoding with switching disabled, the latent input really being ``softmax @ E``
(hooks on the model), the switch cap's forced end, continuous batching, and one slow test on the
embedded model."""

from __future__ import annotations

import math

import pytest
import torch

from harness.adapters import ADAPTERS
from harness.adapters.swireasoning import (
    EXPLICIT,
    LATENT,
    RowMode,
    SwiPolicy,
    SwiReasoningParams,
    entropy_nats,
    is_math_text,
    math_token_mask,
    switch_plan,
    update_mode,
)
from harness.generation import GenerationSettings, eos_ids, generate
from harness.testing import TinyBase

PROMPTS = ["abc", "hello there", "what is 2+3?"]


def _ids(tok, texts):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def _run(base, params, texts=PROMPTS, tokens=32, **kw):
    variant = ADAPTERS.get("swireasoning")(params).wrap(base)
    policy = variant.policy_factory()
    out = generate(variant.model, base.tokenizer, _ids(base.tokenizer, texts),
                   GenerationSettings(tokens, eos_token_ids=[]), policy, **kw)
    return out, policy


def _greedy(base, texts=PROMPTS, tokens=32):
    return generate(base.model, base.tokenizer, _ids(base.tokenizer, texts), GenerationSettings(tokens, eos_token_ids=[]))


# --- the rule ----------------------------------------------------------------------------------


def test_entropy_in_nats_of_known_distributions():
    assert entropy_nats(torch.full((8,), 1 / 8)).item() == pytest.approx(math.log(8))
    assert entropy_nats(torch.tensor([1.0, 0.0])).item() == pytest.approx(0.0, abs=1e-6)
    assert entropy_nats(torch.tensor([[0.5, 0.25, 0.25]])).tolist() == pytest.approx([1.5 * math.log(2)])


def test_switching_rule_follows_the_entropy_trend_against_a_reset_reference():
    state = RowMode(mode=LATENT)
    trace = []
    for h in [2.0, 2.5, 1.9, 2.2, 3.0, 3.1, 2.0, 2.5, 2.4]:
        switched = update_mode(state, h, window=2)
        trace.append((state.mode, state.ref_nats, switched))
    assert trace == [
        (LATENT, 2.0, False),  # the first entropy is the reference
        (LATENT, 2.0, False),  # rising while latent: stay
        (EXPLICIT, 1.9, True),  # below the reference: explicit at once, the reference resets
        (EXPLICIT, 1.9, False),  # above it, but only 1 step in explicit (< window)
        (LATENT, 3.0, False),  # window reached and above the reference: back to latent, reset
        (LATENT, 3.0, False),
        (EXPLICIT, 2.0, True),
        (EXPLICIT, 2.0, False),
        (LATENT, 2.4, False),  # 2 steps in explicit and 2.4 > 2.0
    ]
    assert state.switches == 2


def test_explicit_start_never_leaves_before_the_window():
    state = RowMode(mode=EXPLICIT)
    for h in [1.0, 5.0, 6.0, 7.0]:
        update_mode(state, h, window=4)
    assert state.mode == EXPLICIT and state.switches == 0
    update_mode(state, 8.0, window=4)
    assert state.mode == LATENT


def test_math_tokens_are_recognised_from_their_text():
    assert all(is_math_text(t) for t in ["7", " 12", "x2", "+", " =", "\\frac", "\\", "(", ")^", "$", "{}"])
    assert not any(is_math_text(t) for t in ["", " ", "the", " a", ".", ",", "I", "<|im_end|>"])
    base = TinyBase(seed=2)
    mask = math_token_mask(base.tokenizer, size=len(base.tokenizer) + 3)
    tok = base.tokenizer
    flagged = {tok.decode([i]) for i, m in enumerate(mask) if m}
    assert set("0123456789+-*/^=<>()[]{}|_%$\\") <= flagged
    assert not flagged & set("abcxyzABC .,;:!?'\"") and mask[-3:] == [False] * 3


# --- tiny random Llama models ------------------------------------------------------------------


def test_switching_disabled_equals_greedy_generate_token_for_token():
    base = TinyBase(seed=2)
    out, _ = _run(base, {"start": "explicit", "window": 10**6})
    greedy = _greedy(base)
    assert [r.token_ids for r in out] == [g.token_ids for g in greedy]
    assert all(r.counters == {"latent_steps": 0.0, "explicit_steps": 32.0, "switches": 0.0, "end_forced": 0.0}
               for r in out)


def test_latent_steps_change_the_output_and_count_both_modes():
    base = TinyBase(seed=2)
    out, _ = _run(base, {"window": 2})
    greedy = _greedy(base)
    assert any(r.token_ids != g.token_ids for r, g in zip(out, greedy))
    for r in out:
        assert r.counters["latent_steps"] > 0 and r.counters["explicit_steps"] > 0
        assert r.counters["latent_steps"] + r.counters["explicit_steps"] == r.output_tokens
        assert r.counters["switches"] >= 1


def test_a_latent_step_feeds_the_probability_weighted_embedding():
    base = TinyBase(seed=2)
    E = base.model.get_input_embeddings().weight.detach()
    fed_inputs, logits = [], []

    def capture(module, args, kwargs):
        fed_inputs.append((kwargs.get("input_ids"), kwargs.get("inputs_embeds")))

    pre = base.model.model.register_forward_pre_hook(capture, with_kwargs=True)
    post = base.model.register_forward_hook(lambda m, a, o: logits.append(o["logits"][:, -1].float()))
    try:
        out, policy = _run(base, {"window": 2}, texts=PROMPTS[:2])
    finally:
        pre.remove()
        post.remove()
    checked = {LATENT: 0, EXPLICIT: 0}
    for b, row in enumerate(out):
        fed = policy.modes[b].fed
        for k in range(row.output_tokens - 1):  # token k is fed in call k + 1, mixed from call k's logits
            ids, embeds = fed_inputs[k + 1]
            if fed[k] == LATENT:
                mix = torch.softmax(logits[k][b], dim=-1) @ E
                assert ids is None and torch.allclose(embeds[b, 0], mix, atol=1e-5)
                nearest = torch.cdist(embeds[b, 0][None], E).min().item()
                assert nearest > 0.05, "a latent input is a mix, not one token's embedding"
            elif embeds is not None:  # an explicit row next to a latent one: its own embedding row
                assert torch.equal(embeds[b, 0], E[row.token_ids[k]])
            else:
                assert ids[b, 0].item() == row.token_ids[k]
            checked[fed[k]] += 1
    assert checked[LATENT] > 0 and checked[EXPLICIT] > 0


def test_math_tokens_are_always_fed_explicitly():
    base = TinyBase(seed=2)
    tok = base.tokenizer
    params = SwiReasoningParams(window=2)
    plan = switch_plan(tok, params)
    embed = base.model.get_input_embeddings()
    settings = GenerationSettings(32, eos_token_ids=[])
    ids = _ids(tok, PROMPTS)
    every_token_math = SwiPolicy(params, plan, tok, embed, [True] * len(tok))
    out = generate(base.model, tok, ids, settings, every_token_math)
    assert [r.token_ids for r in out] == [g.token_ids for g in _greedy(base)]
    assert all(r.counters["latent_steps"] == 0 for r in out)
    no_math = SwiPolicy(params, plan, tok, embed, [False] * len(tok))
    assert any(r.counters["latent_steps"] > 0 for r in generate(base.model, tok, ids, settings, no_math))
    # with the real mask, no math token is ever fed latent
    out, policy = _run(base, {"window": 2})
    mask = math_token_mask(tok)
    for b, row in enumerate(out):
        assert not any(mask[t] and f == LATENT for t, f in zip(row.token_ids, policy.modes[b].fed))


def test_the_switch_cap_forces_the_end_of_reasoning():
    base = TinyBase(seed=2)
    tok = base.tokenizer
    free, _ = _run(base, {"window": 2}, texts=PROMPTS[:1], tokens=48)
    capped, policy = _run(base, {"window": 2, "max_switch_count": 1, "answer_cue": " ANS{", "max_answer_tokens": 12},
                          texts=PROMPTS[:1], tokens=48)
    cue = tok(" ANS{", add_special_tokens=False)["input_ids"]
    row, ref = capped[0], free[0]
    at = next(k for k in range(len(row.token_ids)) if row.token_ids[k:k + len(cue)] == cue)
    assert row.token_ids[:at] == ref.token_ids[:at]  # identical reasoning up to the first switch
    assert policy.modes[0].fed[:at].count(LATENT) > 0  # it was thinking latently before the cap
    assert row.output_tokens == at + 12 < 48  # the answer budget counts from the forced end
    assert set(policy.modes[0].fed[at:]) == {EXPLICIT}
    assert row.counters["switches"] == 1.0 and row.counters["end_forced"] == 1.0
    assert free[0].counters["end_forced"] == 0.0


def test_continuous_batching_equals_each_prompt_alone():
    base = TinyBase(seed=2)
    together, _ = _run(base, {"window": 2}, batch_size=2)  # rows join and leave a batch of 2
    for text, row in zip(PROMPTS, together):
        alone, _ = _run(base, {"window": 2}, texts=[text])
        assert row.token_ids == alone[0].token_ids and row.counters == alone[0].counters


def test_a_static_batch_feeds_finished_rows_a_pad_and_keeps_the_others_aligned():
    base = TinyBase(seed=2)
    caps = [2, 32, 20]  # row 0 leaves after 2 tokens, while row 2 is still thinking latently
    continuous, _ = _run(base, {"window": 2}, max_new_tokens=caps)
    alone = [_run(base, {"window": 2}, texts=[t], tokens=cap)[0][0].token_ids for t, cap in zip(PROMPTS, caps)]
    assert [r.token_ids for r in continuous] == alone  # the latent mix follows its row when rows leave
    variant = ADAPTERS.get("swireasoning")({"window": 2}).wrap(base)
    policy = variant.policy_factory()
    policy.continuous = False  # as under a cache whose rows cannot leave: finished rows stay, fed a pad
    static = generate(variant.model, base.tokenizer, _ids(base.tokenizer, PROMPTS),
                      GenerationSettings(32, eos_token_ids=[]), policy, max_new_tokens=caps)
    assert [r.token_ids for r in static] == [r.token_ids for r in continuous]
    assert [r.output_tokens for r in static] == caps
    assert static[2].counters["latent_steps"] > static[0].output_tokens


def test_sampling_is_supported_and_seeded():
    base = TinyBase(seed=2)
    settings = GenerationSettings(24, eos_token_ids=[], temperature=0.8, seed=5)
    runs = []
    for _ in range(2):
        variant = ADAPTERS.get("swireasoning")({"window": 2}).wrap(base)
        runs.append(generate(variant.model, base.tokenizer, _ids(base.tokenizer, PROMPTS), settings,
                             variant.policy_factory()))
    assert [r.token_ids for r in runs[0]] == [r.token_ids for r in runs[1]]
    assert any(r.counters["latent_steps"] > 0 for r in runs[0])


def test_params_are_checked():
    adapter = ADAPTERS.get("swireasoning")
    with pytest.raises(ValueError, match="baseline"):
        adapter({"start": "explicit", "window": 128}).check(128)
    with pytest.raises(ValueError, match="max_answer_tokens"):
        adapter({"max_switch_count": 2, "max_answer_tokens": 64}).check(64)
    with pytest.raises(ValueError, match="leaves no room"):
        adapter({"answer_cue": " ANSWER{", "max_answer_tokens": 3}).wrap(TinyBase())
    with pytest.raises(Exception, match="extra"):
        adapter({"windw": 3})
    adapter({"window": 16, "max_switch_count": 2}).check(128)


# --- the embedded model (slow) -----------------------------------------------------------------

EMBEDDED_QUESTIONS = [
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
    "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
    "per fresh duck egg. How much in dollars does she make every day at the farmers' market?",
    "What is the smallest positive integer n such that 17n is congruent to 1234 modulo 7?",
]


@pytest.mark.slow
def test_embedded_model_takes_both_modes_and_changes_the_output(embedded):
    tok = embedded.tokenizer
    mask = math_token_mask(tok)
    vocab = tok.get_vocab()
    assert mask[vocab["1"]] and mask[vocab["+"]] and not mask[vocab["the"]]
    prompts = [
        tok(tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False)["input_ids"]
        for q in EMBEDDED_QUESTIONS
    ]
    settings = GenerationSettings(48, eos_token_ids=eos_ids(embedded.model, tok))
    baseline = generate(embedded.model, tok, prompts, settings)
    variant = ADAPTERS.get("swireasoning")({"window": 8}).wrap(embedded)
    out = generate(variant.model, tok, prompts, settings, variant.policy_factory())
    for r in out:
        assert r.counters["latent_steps"] > 0 and r.counters["explicit_steps"] > 0, r.counters
        assert r.counters["switches"] >= 1
    assert any(r.text != b.text for r, b in zip(out, baseline))
