"""``speculative`` on tiny random Llama models: lossless output, real savings, honest timing."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.adapters import ADAPTERS
from harness.adapters.speculative import PromptLookupDrafter
from harness.generation import GenerationSettings, generate
from harness.models import param_bytes
from harness.testing import TinyBase

PROMPTS = ["Speculative decoding, verified.", "abc abc abc", "Q: 12+7? A:"]
TOKENS = 32


def _save_draft(base, folder, noise: float, tokenizer=None) -> str:
    """A draft model folder: the target's weights plus Gaussian noise (``noise`` × each tensor's std)."""
    model = copy.deepcopy(base.model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(noise * p.std() * torch.randn(p.shape, generator=gen))
    model.save_pretrained(folder)
    (tokenizer or base.tokenizer).save_pretrained(folder)
    return str(folder)


class TargetPasses:
    """Counts the target's forward passes with a hook on its last decoder layer (which no
    draft runs: a depth_subnet draft has only the first layers) and the tokens each pass saw."""

    def __init__(self, model):
        self.lengths: list[int] = []
        self.handle = model.model.layers[-1].register_forward_hook(
            lambda module, args, kwargs, out: self.lengths.append(args[0].shape[1] if args else kwargs["hidden_states"].shape[1]),
            with_kwargs=True,
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def close(self) -> None:
        self.handle.remove()


def _params(kind: str, base, tmp_path) -> dict:
    if kind == "prompt_lookup":
        return {"draft": "prompt_lookup", "num_draft_tokens": 4}
    if kind == "depth_subnet":
        return {"draft": "depth_subnet", "draft_layers": 2, "num_draft_tokens": 4}
    return {"draft": "model", "draft_model": _save_draft(base, tmp_path / "draft", noise=0.05), "num_draft_tokens": 4}


@pytest.mark.parametrize("kind", ["prompt_lookup", "depth_subnet", "model"])
def test_greedy_output_equals_target_token_for_token(kind, tmp_path):
    base = TinyBase(seed=2, layers=4)
    tok = base.tokenizer
    variant = ADAPTERS.get("speculative")(_params(kind, base, tmp_path)).wrap(base, batch_size=4)
    assert variant.batch_size == 1  # batch size 1 by design
    settings = GenerationSettings(TOKENS, eos_token_ids=[])
    proposed = accepted = 0
    for text in PROMPTS:
        ids = [tok(text, add_special_tokens=False)["input_ids"]]
        reference = generate(base.model, tok, ids, settings)[0]
        passes = TargetPasses(base.model)
        try:
            out = generate(variant.model, tok, ids, settings, variant.policy_factory())[0]
        finally:
            passes.close()
        assert out.token_ids == reference.token_ids
        assert out.counters["target_forward_calls"] == len(passes)
        # each verification pass sees the current token plus its drafts
        assert sum(passes.lengths[1:]) - (len(passes) - 1) == out.counters["draft_tokens_proposed"]
        proposed += out.counters["draft_tokens_proposed"]
        accepted += out.counters["draft_tokens_accepted"]
    # both verification outcomes occurred: accepting every draft unchecked would change the output
    assert 0 < accepted < proposed


def test_prompt_lookup_takes_fewer_target_passes_than_tokens():
    base = TinyBase(seed=2, layers=4)
    tok = base.tokenizer
    ids = [tok("one two one two one two one two", add_special_tokens=False)["input_ids"]]
    settings = GenerationSettings(TOKENS, eos_token_ids=[])
    passes = TargetPasses(base.model)
    try:
        reference = generate(base.model, tok, ids, settings)[0]
        plain = len(passes)
        passes.lengths.clear()
        variant = ADAPTERS.get("speculative")({"draft": "prompt_lookup"}).wrap(base)
        out = generate(variant.model, tok, ids, settings, variant.policy_factory())[0]
    finally:
        passes.close()
    assert out.token_ids == reference.token_ids and out.output_tokens == TOKENS
    assert plain == TOKENS  # plain greedy: one pass per token
    assert len(passes) == out.counters["target_forward_calls"] < out.output_tokens
    c = out.counters
    assert c["draft_tokens_accepted"] == out.output_tokens - len(passes)  # every pass adds 1 + its accepted drafts
    assert c["acceptance_length_mean"] > 0 and c["draft_forward_calls"] == 0


def test_a_rounds_tokens_share_its_gap_per_token():
    """Clock = target passes finished so far. A verification pass that releases k tokens gives
    each of them ITL = the pass's gap / k (vLLM / SGLang's convention for chunked output), never
    one full gap and k − 1 zero gaps; ttft + Σ itl == latency still holds."""
    base = TinyBase(seed=2, layers=4)
    tok = base.tokenizer
    ids = [tok("abc abc abc", add_special_tokens=False)["input_ids"]]
    passes = TargetPasses(base.model)
    variant = ADAPTERS.get("speculative")({"draft": "depth_subnet", "draft_layers": 2}).wrap(base)
    try:
        out = generate(
            variant.model, tok, ids, GenerationSettings(TOKENS, eos_token_ids=[]), variant.policy_factory(),
            clock=lambda: float(len(passes)),
        )[0]
    finally:
        passes.close()
    assert out.ttft_s == 1.0  # the prefill pass
    assert out.latency_s == float(len(passes))  # the last pass released the last token
    assert out.ttft_s + sum(out.itl_s) == pytest.approx(out.latency_s)
    assert len(out.itl_s) == out.output_tokens - 1 and min(out.itl_s) > 0  # no zero gaps
    rounds, i = [], 0  # each pass after prefill: k tokens, each 1/k of the pass's 1 s gap
    while i < len(out.itl_s):
        k = round(1 / out.itl_s[i])
        assert out.itl_s[i : i + k] == pytest.approx([1 / k] * k)
        rounds.append(k)
        i += k
    assert len(rounds) == len(passes) - 1 and sum(rounds) == out.output_tokens - 1
    assert max(rounds) > 1  # some pass released several tokens
    assert out.tpot_s == pytest.approx((out.latency_s - out.ttft_s) / (out.output_tokens - 1))


def test_model_draft_identical_to_target_accepts_everything(tmp_path):
    base = TinyBase(seed=2, layers=4)
    tok = base.tokenizer
    folder = _save_draft(base, tmp_path / "same", noise=0.0)
    variant = ADAPTERS.get("speculative")({"draft": "model", "draft_model": folder, "num_draft_tokens": 3}).wrap(base)
    ids = [tok(PROMPTS[0], add_special_tokens=False)["input_ids"]]
    out = generate(variant.model, tok, ids, GenerationSettings(TOKENS, eos_token_ids=[]), variant.policy_factory())[0]
    c = out.counters
    assert c["draft_tokens_accepted"] == c["draft_tokens_proposed"] > 0
    assert c["target_forward_calls"] == 1 + -(-(TOKENS - 1) // 4)  # prefill, then up to 1 + 3 tokens per pass
    assert c["acceptance_length_mean"] == c["draft_tokens_accepted"] / (c["target_forward_calls"] - 1)
    assert c["draft_forward_calls"] > 0
    assert variant.param_bytes == 2 * param_bytes(base.model)  # the draft's weights are held too


def test_model_draft_with_another_tokenizer_is_rejected(tmp_path):
    base = TinyBase(seed=2, layers=4)
    other = copy.deepcopy(base.tokenizer)
    other.add_tokens(["<extra>"])
    folder = _save_draft(base, tmp_path / "other", noise=0.0, tokenizer=other)
    adapter = ADAPTERS.get("speculative")({"draft": "model", "draft_model": folder})
    with pytest.raises(ValueError, match="different tokenizer"):
        adapter.wrap(base)


def test_params_are_checked():
    cls = ADAPTERS.get("speculative")
    with pytest.raises(ValueError, match="needs draft_model"):
        cls({"draft": "model"})
    with pytest.raises(ValueError, match="only used with draft: model"):
        cls({"draft": "prompt_lookup", "draft_model": "embedded"})
    with pytest.raises(ValueError, match="ngram_min"):
        cls({"ngram_min": 3, "ngram_max": 2})
    with pytest.raises(ValueError, match="must be below"):
        cls({"draft": "depth_subnet", "draft_layers": 4}).wrap(TinyBase(layers=4))
    with pytest.raises(ValueError, match="not found"):
        cls({"draft": "model", "draft_model": "/nonexistent/draft"}).check(64)


def test_prompt_lookup_drafter_matches_longest_recent_ngram():
    drafter = PromptLookupDrafter(ngram_max=3, ngram_min=1)
    # last trigram (7, 8, 9) occurred at 0 and 5; the latest with 2 following tokens wins
    assert drafter.propose([7, 8, 9, 1, 2, 7, 8, 9, 3, 4, 5, 7, 8, 9], 2) == [3, 4]
    # no full-length continuation anywhere: the longest one found
    assert drafter.propose([5, 6, 5], 3) == [6, 5]
    assert drafter.propose([1, 2, 3], 4) == []  # nothing repeats
    assert PromptLookupDrafter(ngram_max=3, ngram_min=2).propose([4, 1, 2, 4], 2) == []  # unigram not allowed


def test_sampling_is_refused_not_silently_greedy():
    """Greedy verification is the technique: asked to sample, the policy refuses (greedy_only)."""
    base = TinyBase(seed=2, layers=4)
    variant = ADAPTERS.get("speculative")({"draft": "prompt_lookup", "num_draft_tokens": 4}).wrap(base)
    ids = [base.tokenizer("abc abc abc", add_special_tokens=False)["input_ids"]]
    with pytest.raises(ValueError, match="greedily"):
        generate(variant.model, base.tokenizer, ids, GenerationSettings(8, eos_token_ids=[], temperature=1.0, seed=0),
                 variant.policy_factory())
