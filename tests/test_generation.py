"""The shared decode loop: equality with ``generate``, token timing, stop rules."""

from __future__ import annotations

import itertools

import pytest
import torch

from harness.generation import DecodePolicy, GenerationSettings, generate
from harness.testing import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=1), tiny_tokenizer()


def _ids(tok, texts):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_greedy_batch_equals_transformers_generate(tiny):
    model, tok = tiny
    texts = ["The cat sat on", "Hi", "Numbers: 1, 2, 3,"]
    settings = GenerationSettings(max_new_tokens=12, eos_token_ids=[])
    ours = generate(model, tok, _ids(tok, texts), settings)
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=0, eos_token_id=None)
    for i, result in enumerate(ours):
        assert result.token_ids == ref[i, enc["input_ids"].shape[1] :].tolist()
        assert result.finish_reason == "length" and result.output_tokens == 12


def test_token_timing_invariants_with_fake_clock(tiny):
    model, tok = tiny
    ticks = itertools.count()
    clock = lambda: float(next(ticks)) * 0.5  # noqa: E731  every call advances 0.5 s

    class StopRowOneEarly(DecodePolicy):
        def after_token(self, row, token, text_so_far):
            if row.index == 1 and len(row.token_ids) == 3:
                row.finish_reason = "stop"

    settings = GenerationSettings(max_new_tokens=6, eos_token_ids=[])
    results = generate(model, tok, _ids(tok, ["abc", "defgh"]), settings, StopRowOneEarly(), clock=clock)
    long, short = results
    assert (long.output_tokens, short.output_tokens) == (6, 3)
    for r in results:
        assert r.ttft_s == pytest.approx(0.5)  # start at t=0, first token read at t=0.5
        assert r.ttft_s + sum(r.itl_s) == pytest.approx(r.latency_s)
        assert len(r.itl_s) == r.output_tokens - 1
        assert r.tpot_s == pytest.approx((r.latency_s - r.ttft_s) / (r.output_tokens - 1))
    assert short.latency_s < long.latency_s  # each sequence's own last token


def test_zero_and_one_token_outputs(tiny):
    model, tok = tiny
    prompt = _ids(tok, ["xyz"])
    first = generate(model, tok, prompt, GenerationSettings(max_new_tokens=1, eos_token_ids=[]))[0]
    assert first.output_tokens == 1 and first.tpot_s is None and first.itl_s == []
    assert first.ttft_s == first.latency_s
    # Make the first greedy token an EOS: zero output tokens, finish "stop", and the step it took is
    # real: ttft = latency = the time the EOS was on the host (not null: the request stays in the
    # percentiles).
    ticks = itertools.count()
    clock = lambda: float(next(ticks)) * 0.5  # noqa: E731  start 0.0, the EOS step at 0.5
    eos_first = generate(model, tok, prompt, GenerationSettings(max_new_tokens=4, eos_token_ids=[first.token_ids[0]]),
                         clock=clock)[0]
    assert eos_first.output_tokens == 0 and eos_first.finish_reason == "stop"
    assert eos_first.ttft_s == eos_first.latency_s == pytest.approx(0.5)
    assert eos_first.tpot_s is None and eos_first.itl_s == []


def test_eos_first_rows_in_a_batch_keep_their_own_time(tiny):
    """In a batch, a row whose first token is EOS ends at that step; its neighbours go on."""
    model, tok = tiny
    prompts = _ids(tok, ["xyz", "The cat sat on"])
    free = generate(model, tok, prompts, GenerationSettings(max_new_tokens=4, eos_token_ids=[]))
    eos = free[0].token_ids[0]
    assert eos not in free[1].token_ids[:3], "pick prompts whose continuations differ"
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731  start 0, steps at 1, 2, 3, ...
    out = generate(model, tok, prompts, GenerationSettings(max_new_tokens=4, eos_token_ids=[eos]), clock=clock)
    assert out[0].output_tokens == 0 and (out[0].ttft_s, out[0].latency_s) == (1.0, 1.0)
    assert out[1].ttft_s == 1.0 and out[1].latency_s == float(out[1].output_tokens)
    assert out[1].ttft_s + sum(out[1].itl_s) == pytest.approx(out[1].latency_s)


def test_eos_first_request_stays_in_the_latency_percentiles(tiny):
    """Four requests decoded one by one on a scripted clock (1 s per call); two emit EOS at their
    first step (1 s), two decode 4 tokens (4 s). The EOS-first requests count in the cell's
    percentiles: p50 = 2.5 s over all four (dropping them, as a null did, pushed it to 4 s)."""
    from harness.core.rows import cell_metrics

    model, tok = tiny
    prompts = _ids(tok, ["xyz", "xyz", "The cat sat on", "Numbers: 1, 2, 3,"])
    eos = generate(model, tok, prompts[:1], GenerationSettings(max_new_tokens=1, eos_token_ids=[]))[0].token_ids[0]
    rows = []
    for prompt in prompts:
        ticks = itertools.count()
        r = generate(model, tok, [prompt], GenerationSettings(max_new_tokens=4, eos_token_ids=[eos]),
                     clock=lambda: float(next(ticks)))[0]
        rows.append({"correct": 1.0, "output_tokens": r.output_tokens, "finish_reason": r.finish_reason,
                     "latency_s": r.latency_s, "ttft_s": r.ttft_s, "tpot_s": r.tpot_s, "itl_s": r.itl_s})
    assert [r["output_tokens"] for r in rows] == [0, 0, 4, 4]
    m = cell_metrics(rows, 10.0)
    assert m["latency_p50_s"] == pytest.approx(2.5) and m["ttft_p50_s"] == 1.0


def test_itl_percentiles_pool_every_samples_gaps():
    """Cell ITL percentiles are over all samples' per-token ITLs pooled (a long output weighs by
    its tokens); samples without ITL (nothing generated, or read back as arrays) are handled."""
    import numpy as np

    from harness.core.rows import cell_metrics

    rows = [
        {"correct": 1.0, "output_tokens": 5, "itl_s": [0.1, 0.1, 0.1, 0.1]},
        {"correct": 0.0, "output_tokens": 3, "itl_s": np.array([0.3, 0.5])},  # as read from Parquet
        {"correct": 1.0, "output_tokens": 1, "itl_s": []},
        {"correct": 1.0, "output_tokens": None, "itl_s": None},  # a log-likelihood sample
    ]
    m = cell_metrics(rows, 1.0)
    pooled = [0.1, 0.1, 0.1, 0.1, 0.3, 0.5]
    assert m["itl_p50_s"] == pytest.approx(float(np.percentile(pooled, 50)))
    assert m["itl_p90_s"] == pytest.approx(float(np.percentile(pooled, 90)))
    assert m["itl_p99_s"] == pytest.approx(float(np.percentile(pooled, 99)))
    assert cell_metrics([{"correct": 1.0, "itl_s": None}], 1.0)["itl_p50_s"] is None


def test_chunked_emission_itl_is_the_gap_over_its_tokens(tiny):
    """A policy whose forward returns logits an earlier pass computed ("reused") makes the
    token chosen from them part of that pass's emission: each token of a k-token emission
    gets the gap / k, and ttft + Σ itl == latency."""
    model, tok = tiny
    now = [0.0]

    class TwoPerPass(DecodePolicy):
        """Every other decode step is 'free': its logits come with the previous pass."""

        def __init__(self):
            self.step = 0

        def forward(self, model, **inputs):
            self.step += 1
            out = model(**inputs)
            if self.step > 1 and self.step % 2 == 1:  # a stored result: no time passes
                return {"logits": out.logits, "past_key_values": out.past_key_values, "reused": True}
            now[0] += 1.0  # a real pass: one second
            return out

    settings = GenerationSettings(max_new_tokens=7, eos_token_ids=[])
    out = generate(model, tok, _ids(tok, ["q"]), settings, TwoPerPass(), clock=lambda: now[0])[0]
    # prefill (t=1) emits 1 token; passes at t=2, 3, 4 emit 2 tokens each
    assert out.output_tokens == 7 and out.ttft_s == 1.0 and out.latency_s == 4.0
    assert out.itl_s == pytest.approx([0.5] * 6)
    assert out.ttft_s + sum(out.itl_s) == pytest.approx(out.latency_s)


def test_token_timing_rules():
    from harness.generation import token_timing

    # emissions (time, tokens): a first chunk of 3 arrives with the first token (ITL 0 for 2),
    # then 2 tokens 1 s later (0.5 each), then 1 token 0.3 s later
    ttft, latency, itl, tpot = token_timing(10.0, [(10.5, 3), (11.5, 2), (11.8, 1)])
    assert (ttft, latency) == pytest.approx((0.5, 1.8))
    assert itl == pytest.approx([0.0, 0.0, 0.5, 0.5, 0.3])
    assert tpot == pytest.approx(1.3 / 5)
    ttft, latency, itl, tpot = token_timing(10.0, [], end_time=10.25)  # EOS first
    assert (ttft, latency, itl, tpot) == (0.25, 0.25, [], None)
    assert token_timing(10.0, []) == (None, None, [], None)
    assert token_timing(0.0, [(0.4, 1)]) == (0.4, 0.4, [], None)


def test_stop_string_cuts_text_and_ends_row(tiny):
    model, tok = tiny
    free = generate(model, tok, _ids(tok, ["stop test"]), GenerationSettings(max_new_tokens=10, eos_token_ids=[]))[0]
    stop = free.text[3:5]
    assert stop, "the tiny model should produce some text"
    cut = generate(
        model, tok, _ids(tok, ["stop test"]), GenerationSettings(max_new_tokens=10, stop_strings=[stop], eos_token_ids=[])
    )[0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.output_tokens < free.output_tokens


def test_forced_tokens_are_fed_back(tiny):
    model, tok = tiny
    forced = tok("!!", add_special_tokens=False)["input_ids"]

    class Force(DecodePolicy):
        def after_token(self, row, token, text_so_far):
            if len(row.token_ids) == 2:
                row.forced.extend(forced)

    out = generate(model, tok, _ids(tok, ["q"]), GenerationSettings(max_new_tokens=6, eos_token_ids=[]), Force())[0]
    assert out.token_ids[2:4] == forced
    with torch.no_grad():  # the token after the forced ones is the model's greedy continuation of them
        ids = torch.tensor([_ids(tok, ["q"])[0] + out.token_ids[:4]])
        assert model(ids).logits[0, -1].argmax().item() == out.token_ids[4]


def test_sampling_is_seeded_and_temperature_zero_stays_greedy(tiny):
    model, tok = tiny
    prompts = _ids(tok, ["The cat sat on"])
    greedy = generate(model, tok, prompts, GenerationSettings(max_new_tokens=16, eos_token_ids=[]))[0].token_ids
    zero = generate(model, tok, prompts, GenerationSettings(max_new_tokens=16, eos_token_ids=[], temperature=0.0, seed=5))
    assert zero[0].token_ids == greedy
    hot = lambda seed: generate(  # noqa: E731
        model, tok, prompts, GenerationSettings(max_new_tokens=16, eos_token_ids=[], temperature=5.0, seed=seed)
    )[0].token_ids
    assert hot(7) == hot(7)
    assert len({tuple(hot(s)) for s in range(4)} | {tuple(greedy)}) > 2


def test_a_rows_draws_do_not_depend_on_its_batch(tiny):
    """One generator per row: the same (prompt, seed) gives the same tokens alone and inside a
    batch of 4 with other prompts (at another position, with other seeds)."""
    model, tok = tiny
    settings = GenerationSettings(max_new_tokens=16, eos_token_ids=[], temperature=3.0, top_p=0.9)
    alone = generate(model, tok, _ids(tok, ["The cat sat on"]), settings, seeds=[1234])[0].token_ids
    batch = generate(
        model, tok, _ids(tok, ["Hi", "Numbers: 1, 2, 3,", "The cat sat on", "xyz"]), settings, seeds=[7, 8, 1234, 9]
    )
    assert batch[2].token_ids == alone
    # the same prompt twice in one batch with two seeds: two different draws
    twice = generate(model, tok, _ids(tok, ["The cat sat on"] * 2), settings, seeds=[1234, 1235])
    assert twice[0].token_ids == alone and twice[1].token_ids != alone
    greedy = generate(model, tok, _ids(tok, ["The cat sat on"]), GenerationSettings(max_new_tokens=16, eos_token_ids=[]))
    assert alone != greedy[0].token_ids


def test_draw_follows_temperature_and_top_p():
    """Sampling.draw on fixed logits: frequencies match softmax(logits / T), cut to the nucleus."""
    from harness.generation import Sampling

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = (probs.log() * 2.0).expand(4000, -1)  # T = 2 gives back probs
    n = logits.shape[0]
    full = Sampling.of(GenerationSettings(1, temperature=2.0), n, seeds=range(n)).draw(logits)
    freq = torch.bincount(torch.tensor(full), minlength=4).float() / n
    assert torch.allclose(freq, probs, atol=0.03)
    nucleus = Sampling.of(GenerationSettings(1, temperature=2.0, top_p=0.7), n, seeds=range(n)).draw(logits)
    freq = torch.bincount(torch.tensor(nucleus), minlength=4).float() / n
    # kept: 0 (mass before 0), 1 (0.5 < 0.7); cut: 2 (0.8), 3 (0.95)
    assert freq[2] == 0 and freq[3] == 0
    assert torch.allclose(freq[:2], torch.tensor([0.5, 0.3]) / 0.8, atol=0.03)


def test_tiny_top_p_is_greedy_and_greedy_only_policies_refuse_to_sample(tiny):
    model, tok = tiny
    prompts = _ids(tok, ["The cat sat on", "Hi"])
    greedy = [r.token_ids for r in generate(model, tok, prompts, GenerationSettings(max_new_tokens=12, eos_token_ids=[]))]
    hot = GenerationSettings(max_new_tokens=12, eos_token_ids=[], temperature=5.0, top_p=1e-9, seed=3)
    assert [r.token_ids for r in generate(model, tok, prompts, hot)] == greedy

    class GreedyOnly(DecodePolicy):
        greedy_only = True

    with pytest.raises(ValueError, match="greedily"):
        generate(model, tok, prompts, hot, GreedyOnly())
    generate(model, tok, prompts, GenerationSettings(max_new_tokens=2, eos_token_ids=[]), GreedyOnly())  # greedy: fine
