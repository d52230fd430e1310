"""Continuous batching and incremental detokenization in the shared decode loop."""

from __future__ import annotations

import itertools

import pytest
import torch

from harness.detok import IncrementalText, find_stop
from harness.generation import DecodePolicy, GenerationSettings, generate
from harness.testing import tiny_model, tiny_tokenizer

TEXTS = ["The cat sat on", "Hi", "Numbers: 1, 2, 3,", "xyz", "A much longer prompt than the others, isn't it", "q",
         "Hello world", "0123456789", "abc def ghi", "Zz"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=1), tiny_tokenizer()


def _ids(tok, texts):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def _reference(model, tok, ids, cap, eos=None):
    """``transformers``' ``generate`` on one prompt at batch 1 (no padding anywhere)."""
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                         do_sample=False, max_new_tokens=cap, pad_token_id=0, eos_token_id=eos)
    new = out[0, len(ids):].tolist()
    if eos is not None and eos in new:
        new = new[: new.index(eos)]
    return new


class Recorder(DecodePolicy):
    """Greedy, recording the join/leave events and the batch width at every choice."""

    def __init__(self):
        self.events: list[tuple[str, int]] = []
        self.widths: list[int] = []

    def begin(self, rows):
        self.events.append(("join", [r.index for r in rows]))

    def choose(self, rows, logits):
        self.widths.append(len(rows))
        return super().choose(rows, logits)

    def leave(self, row):
        self.events.append(("leave", row.index))


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_continuous_batch_equals_generate_per_prompt_with_ragged_caps(tiny, batch_size):
    """Greedy tokens at every batch size equal ``generate`` on each prompt alone, with per-row
    caps from 1 to 20 (rows finish at different steps, later prompts take their slots)."""
    model, tok = tiny
    prompts = _ids(tok, TEXTS)
    caps = [1 + (7 * i) % 20 for i in range(len(prompts))]
    settings = GenerationSettings(max_new_tokens=20, eos_token_ids=[])
    policy = Recorder()
    ours = generate(model, tok, prompts, settings, policy, max_new_tokens=caps, batch_size=batch_size)
    for ids, cap, result in zip(prompts, caps, ours):
        assert result.token_ids == _reference(model, tok, ids, cap)
        assert result.finish_reason == "length"
    assert max(policy.widths) == batch_size  # never more rows in flight than slots
    if 1 < batch_size < len(prompts):
        # a freed slot is taken at once: a prompt joins while rows that joined before it still decode
        live, joined_beside_others = set(), 0
        for kind, index in policy.events:
            if kind == "join":
                joined_beside_others += bool(live)
                live.update(index)
            else:
                live.discard(index)
        assert joined_beside_others > 0


def test_continuous_batch_with_eos_equals_generate(tiny):
    model, tok = tiny
    prompts = _ids(tok, TEXTS)
    free = generate(model, tok, prompts, GenerationSettings(max_new_tokens=12, eos_token_ids=[]), batch_size=4)
    eos = free[0].token_ids[2]  # a token the model does write: some rows end early on it
    ours = generate(model, tok, prompts, GenerationSettings(max_new_tokens=12, eos_token_ids=[eos]), batch_size=4)
    assert any(r.finish_reason == "stop" for r in ours) and any(r.finish_reason == "length" for r in ours)
    for ids, result in zip(prompts, ours):
        assert result.token_ids == _reference(model, tok, ids, 12, eos=eos)


def test_a_request_starts_when_it_enters_the_batch(tiny):
    """Fake clock: the first batch_size rows start with the call (queue 0); a row that waited
    starts at the clock read before its own prefill, so its TTFT covers that prefill and not
    the wait, and the timing invariants hold for every row."""
    model, tok = tiny
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731  every read advances 1 s
    prompts = _ids(tok, TEXTS[:5])
    caps = [2, 6, 3, 4, 2]
    results = generate(model, tok, prompts, GenerationSettings(max_new_tokens=8, eos_token_ids=[]),
                       max_new_tokens=caps, clock=clock, batch_size=2)
    assert [r.output_tokens for r in results] == caps
    assert results[0].queue_s == results[1].queue_s == 0.0
    assert all(r.queue_s > 0 for r in results[2:])
    assert results[2].queue_s <= results[3].queue_s <= results[4].queue_s
    for r in results:
        assert r.ttft_s == pytest.approx(1.0)  # its start, then one clock read when its first token is chosen
        assert r.ttft_s + sum(r.itl_s) == pytest.approx(r.latency_s)
        assert len(r.itl_s) == r.output_tokens - 1


def test_sampled_rows_do_not_depend_on_when_they_join(tiny):
    """Each prompt keeps its own generator: the same seeds give the same tokens at batch 2
    (rows join late, at other positions) as all at once."""
    model, tok = tiny
    settings = GenerationSettings(max_new_tokens=10, eos_token_ids=[], temperature=3.0, top_p=0.9)
    prompts = _ids(tok, TEXTS[:6])
    seeds = [11, 12, 13, 14, 15, 16]
    caps = [3, 10, 5, 8, 2, 9]
    together = generate(model, tok, prompts, settings, max_new_tokens=caps, seeds=seeds)
    two_slots = generate(model, tok, prompts, settings, max_new_tokens=caps, seeds=seeds, batch_size=2)
    assert [r.token_ids for r in two_slots] == [r.token_ids for r in together]


def test_a_per_batch_policy_refuses_a_continuous_batch(tiny):
    model, tok = tiny

    class PerBatch(DecodePolicy):
        continuous = False

    settings = GenerationSettings(max_new_tokens=4, eos_token_ids=[])
    with pytest.raises(ValueError, match="static batches only"):
        generate(model, tok, _ids(tok, TEXTS[:3]), settings, PerBatch(), batch_size=2)
    static = generate(model, tok, _ids(tok, TEXTS[:3]), settings, PerBatch())
    assert [r.token_ids for r in static] == [r.token_ids for r in generate(model, tok, _ids(tok, TEXTS[:3]), settings)]


def test_stop_strings_do_not_redecode_the_output(tiny):
    """The text of each step is the new token's piece: the ids handed to ``decode`` over a whole
    sequence grow linearly with its length (a full re-decode per step would be quadratic)."""
    model, tok = tiny
    decoded = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def decode(self, ids, **kw):
            decoded.append(len(ids))
            return self.inner.decode(ids, **kw)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    n = 120
    settings = GenerationSettings(max_new_tokens=n, eos_token_ids=[], stop_strings=["never-written-stop"])
    result = generate(model, Counting(tok), _ids(tok, ["The cat sat on"]), settings)[0]
    assert result.output_tokens == n
    during = sum(decoded) - n  # the final decode of the whole output happens once, after the loop
    assert during <= 6 * n, f"{during} ids decoded for {n} tokens"


def test_incremental_text_equals_a_full_decode(tiny):
    """On random id streams of the tiny tokenizer and on multibyte text, the incremental text
    is the full decode; stop strings split across tokens are found where a full search finds them."""
    _, tok = tiny
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        ids = torch.randint(0, len(tok), (40,), generator=gen).tolist()
        inc = IncrementalText(tok)
        for t in ids:
            inc.push(t)
        assert inc.text == tok.decode(ids, skip_special_tokens=True)
    text = "abc STOP def"
    found = -1
    inc = IncrementalText(tok)
    for t in tok(text, add_special_tokens=False)["input_ids"]:
        added = inc.push(t)
        hit = find_stop(inc.text, added, ["STOP", "zzz"])
        if hit >= 0 and found < 0:
            found = hit
    assert found == text.index("STOP")


@pytest.mark.slow
def test_incremental_text_on_the_embedded_tokenizer(embedded):
    """Byte-level BPE with multibyte characters (accents, CJK, emoji) split over several tokens:
    the incremental text ends equal to the full decode, and never holds a broken character."""
    tok = embedded.tokenizer
    text = "Café naïve — 数学 🙂 résumé: 3×4 = 12, ∑ x² ≥ 0."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    inc = IncrementalText(tok)
    for t in ids:
        inc.push(t)
        assert "\ufffd" not in inc.text
    assert inc.text == tok.decode(ids, skip_special_tokens=True) == text


@pytest.mark.slow
def test_embedded_continuous_batch_8_equals_generate(embedded):
    """The embedded SmolLM2 (fp32), 8 chat prompts of ragged lengths and caps, batch 8 with 4
    more waiting: each row's greedy tokens equal ``generate`` on the prompt alone."""
    from harness.generation import eos_ids

    tok, model = embedded.tokenizer, embedded.model
    questions = ["What is 7 times 8?", "Name a prime number larger than 10.", "Say hi.",
                 "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether?", "What is 2+2?", "Spell cat backwards.",
                 "Is 91 prime?", "What colour is the sky?", "Count to five.", "What is 15% of 200?",
                 "Who wrote Hamlet?", "Give one word for happy."]
    prompts = [tok(tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True), add_special_tokens=False)["input_ids"]
               for q in questions]
    caps = [4 + (5 * i) % 21 for i in range(len(prompts))]
    eos = eos_ids(model, tok)
    ours = generate(model, tok, prompts, GenerationSettings(max_new_tokens=24, eos_token_ids=eos),
                    max_new_tokens=caps, batch_size=8)
    for ids, cap, result in zip(prompts, caps, ours):
        ref = model.generate(torch.tensor([ids]), attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                             do_sample=False, max_new_tokens=cap, pad_token_id=tok.pad_token_id or eos[0],
                             eos_token_id=eos)[0, len(ids):].tolist()
        ref = [t for t in itertools.takewhile(lambda t: t not in eos, ref)]
        assert result.token_ids == ref
