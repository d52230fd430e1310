"""``speculative``: lossless speculative decoding — draft ``k`` tokens, verify them in one pass.

Follows "Fast Inference from Transformers via Speculative Decoding" (Leviathan, Kalman,
Matias; arXiv 2211.17192) in its greedy form: a cheap drafter proposes ``k`` tokens, the
target model scores the current token and every draft in ONE forward pass, and the longest
prefix of drafts equal to the target's own greedy choices is accepted, followed by the
target's token at the first mismatch (or after the last draft). The output is the target's
greedy output token for token (tests); what changes is how many target forward passes it takes.

Drafters (``draft``):

* ``prompt_lookup`` — prompt lookup decoding (A. Saxena, 2023, no paper:
  https://github.com/apoorvumang/prompt-lookup-decoding): the tokens that followed an earlier
  occurrence of the sequence's last n-gram (n from ``ngram_max`` down to ``ngram_min``) in the
  prompt and output so far. No model runs. We take the most recent occurrence that has ``k``
  following tokens (else the one with the most), where Saxena's code takes the first.
* ``depth_subnet`` — self-speculation: the target's own first ``draft_layers`` decoder layers
  + final norm + head (:func:`~harness.adapters.depth_subnet.truncate_layers`, weights shared),
  training-free. It stands in for LayerSkip ("LayerSkip: Enabling Early Exit Inference and
  Self-Speculative Decoding", arXiv 2404.16710) and M2R2 self-speculation, which *train* the
  model so that early layers draft well; untrained, acceptance is lower. The draft keeps its own
  KV cache (LayerSkip reuses the target's cache of those layers; not done here).
* ``model`` — a separate draft model (``draft_model``, any reference :mod:`harness.models`
  loads), at the target's dtype and device; its tokenizer must equal the target's
  (``ValueError`` otherwise). Its bytes are added to the variant's ``param_bytes``.

How it runs in the shared decode loop (:mod:`harness.generation`, unchanged): the policy's
``forward`` hook, on a decode step whose input is the current token ``t`` at position ``p``,
drafts ``d_1..d_n``, runs the target once over ``[t, d_1..d_n]`` (positions ``p..p+n``),
accepts ``a`` drafts, crops the target's KV cache to ``p + 1 + a`` tokens and returns the logits
at ``t``. The loop's own argmax of those logits is ``d_1``; on the next ``a`` loop steps the
input is the already verified ``d_i``, whose logits the policy stored, so it returns them
without calling the target (the cache already holds ``d_i``). The loop's argmax after ``d_a`` is
the target's correction/bonus token, which starts the next round. Positions and the attention
mask the loop passes advance one per token, in step with the cache. Token timestamps come from
the loop: the ``a + 1`` tokens of a round are stamped when the loop emits them, microseconds
after the verification pass that produced them. The drafter's prefill of the prompt runs in the
target's prefill step (it counts in TTFT). The policy marks the stored logits ``"reused"``, so
the loop counts the round's ``a + 1`` tokens as one emission: each gets the round's gap /
``(a + 1)`` as its inter-token latency (the vLLM / SGLang convention for chunked output), and
``ttft_s + Σ itl_s == latency_s`` still holds. Drafts are capped so that a round never produces more
tokens than the row's remaining budget.

Counters per request: ``draft_tokens_proposed``, ``draft_tokens_accepted`` (accepted by
verification; tokens after a stop string or EOS are then discarded by the loop),
``acceptance_length_mean`` (accepted drafts per verification pass, over passes that verified
at least one draft; NaN when none did), ``target_forward_calls`` (prefill + every decode or
verification pass of the target; plain greedy decoding takes one per token), and
``draft_forward_calls`` (forward passes of the draft model; 0 for prompt lookup).

Batch size 1 (``batchable = False``): each sequence accepts a different number of drafts per
pass, so the rows of a batch would need KV caches of different lengths.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from harness.adapters.base import Adapter, AdapterParams, check_companion_ref, load_companion, register_adapter
from harness.adapters.depth_subnet import truncate_layers
from harness.generation import DecodePolicy, RowState, cache_kwarg, cache_of


class SpeculativeParams(AdapterParams):
    draft: Literal["prompt_lookup", "depth_subnet", "model"] = Field(
        "prompt_lookup", description="drafter: prompt_lookup | depth_subnet (self-speculation) | model"
    )
    num_draft_tokens: int = Field(5, ge=1, description="tokens drafted per verification pass (k)")
    draft_layers: int = Field(8, ge=1, description="decoder layers of the depth_subnet draft")
    draft_model: str | None = Field(None, description="model reference of the draft (draft: model); same tokenizer")
    ngram_max: int = Field(3, ge=1, description="longest n-gram prompt lookup matches")
    ngram_min: int = Field(1, ge=1, description="shortest n-gram prompt lookup matches")

    @model_validator(mode="after")
    def _consistent(self):
        if self.draft == "model" and not self.draft_model:
            raise ValueError("draft: model needs draft_model (a model reference with the same tokenizer)")
        if self.draft != "model" and self.draft_model:
            raise ValueError(f"draft_model is only used with draft: model (draft is {self.draft!r})")
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"ngram_min={self.ngram_min} exceeds ngram_max={self.ngram_max}")
        return self


def crop_cache(cache, length: int) -> None:
    """Drop a KV cache's entries beyond the first ``length`` tokens (in place).

    Uses ``Cache.crop`` with a negative count (tokens to remove), which transformers 4.x and
    5.x both read as a removal.
    """
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


class PromptLookupDrafter:
    """Drafts the continuation of an earlier occurrence of the context's last n-gram."""

    def __init__(self, ngram_max: int, ngram_min: int):
        self.ngram_max, self.ngram_min = ngram_max, ngram_min
        self.calls = 0  # no model runs

    def prefill(self, prompt: list[int]) -> None:
        """Nothing to warm up."""

    def propose(self, context: list[int], k: int) -> list[int]:
        """Up to ``k`` ids following the most recent earlier match of the longest matching
        suffix n-gram (``ngram_max`` down to ``ngram_min``); ``[]`` when nothing matches."""
        size = len(context)
        for n in range(min(self.ngram_max, size - 1), self.ngram_min - 1, -1):
            tail = context[size - n :]
            best: list[int] = []
            for start in range(size - n - 1, -1, -1):  # latest first; never the tail itself
                if context[start : start + n] == tail:
                    follow = context[start + n : start + n + k]
                    if len(follow) == k:
                        return follow
                    if len(follow) > len(best):
                        best = follow
            if best:
                return best
        return []


class ModelDrafter:
    """Greedy drafts from a causal LM with its own KV cache, kept in step with the context.

    Args:
        model: the draft ``transformers`` causal LM (same tokenizer as the target).
        vocab_limit: ids at or above it are never drafted (the target's vocabulary size).
    """

    def __init__(self, model, vocab_limit: int):
        self.model, self.vocab_limit = model, vocab_limit
        self.device = next(model.parameters()).device
        self.cache_kw = cache_kwarg(model)
        self.cache = None
        self.cached: list[int] = []  # the ids the draft's cache holds, in order
        self.calls = 0

    def _feed(self, ids: list[int]) -> torch.Tensor:
        start = len(self.cached)
        positions = torch.arange(start, start + len(ids), device=self.device).unsqueeze(0)
        extra = {self.cache_kw: self.cache} if self.cache is not None else {}
        out = self.model(
            input_ids=torch.tensor([ids], device=self.device), position_ids=positions, use_cache=True,
            logits_to_keep=1, **extra,
        )
        self.calls += 1
        self.cache = cache_of(out)
        self.cached.extend(ids)
        return out["logits"][0, -1, : self.vocab_limit]

    def prefill(self, prompt: list[int]) -> None:
        """Fill the draft's cache with the prompt but its last token (fed by the first proposal)."""
        if len(prompt) > 1:
            self._feed(prompt[:-1])

    def propose(self, context: list[int], k: int) -> list[int]:
        """``k`` greedy draft ids after ``context`` (catches the cache up first; the last
        draft is not fed back, so the cache ends ``k - 1`` drafts past the context)."""
        keep = 0
        limit = min(len(self.cached), len(context) - 1)
        while keep < limit and self.cached[keep] == context[keep]:
            keep += 1
        if self.cache is not None:
            crop_cache(self.cache, keep)
        del self.cached[keep:]
        feed, drafts = context[keep:], []
        for _ in range(k):
            token = int(self._feed(feed).float().argmax())
            drafts.append(token)
            feed = [token]
        return drafts


class SpeculativePolicy(DecodePolicy):
    """Draft-then-verify inside the decode loop's ``forward`` hook (batch size 1; see module doc).

    Args:
        num_draft_tokens: ``k``, drafts per verification pass (fewer near the token cap).
        drafter: a :class:`PromptLookupDrafter` or :class:`ModelDrafter` (fresh per batch).
    """

    greedy_only = True  # verification accepts the drafts the target's argmax agrees with
    continuous = False  # the drafter and the verified logits belong to the batch

    def __init__(self, num_draft_tokens: int, drafter):
        self.k = num_draft_tokens
        self.drafter = drafter
        self.row: RowState | None = None
        self.prompt: list[int] | None = None
        self.verified: list[tuple[int, torch.Tensor]] = []  # (id, its logits [1, 1, vocab]) in the cache
        self.proposed = self.accepted = self.passes = self.target_calls = 0

    def begin(self, rows: list[RowState]) -> None:
        self.row = rows[0]

    def forward(self, model, **inputs):
        ids = inputs["input_ids"]
        if ids.shape[0] != 1:
            raise ValueError("speculative decodes at batch size 1")
        if self.prompt is None:  # prefill
            self.prompt = ids[0].tolist()
            self.drafter.prefill(self.prompt)
            self.target_calls += 1
            return model(**inputs)
        token = int(ids[0, 0])
        if self.verified:
            expected, logits = self.verified.pop(0)
            if expected != token:  # the loop's argmax of the target's own logits must be the draft
                raise RuntimeError(f"speculative: loop fed token {token}, verification accepted {expected}")
            # already verified and in the target's cache: no target pass; the token chosen from
            # these logits arrived with the verification pass (same emission: per-token ITL)
            return {"logits": logits, "cache": inputs.get("cache", inputs.get("past_key_values")), "reused": True}
        return self._verify(model, token, inputs)

    def _verify(self, model, token: int, inputs):
        kw = "cache" if "cache" in inputs else "past_key_values"
        cache, position = inputs[kw], inputs["position_ids"]
        start = int(position[0, 0])
        crop_cache(cache, start)  # the cache holds exactly the tokens before `token`
        room = self.row.max_new_tokens - len(self.row.token_ids)  # tokens this round may still add
        k = max(0, min(self.k, room - 1))
        drafts = self.drafter.propose(self.prompt + self.row.token_ids, k) if k else []
        n = len(drafts)
        device = position.device
        mask = inputs.get("attention_mask")
        if mask is not None:
            mask = torch.cat([mask, torch.ones((1, n), dtype=mask.dtype, device=device)], dim=-1)
        out = model(
            input_ids=torch.tensor([[token, *drafts]], device=device),
            attention_mask=mask,
            position_ids=position + torch.arange(n + 1, device=device),
            use_cache=True,
            **{kw: cache},
        )
        self.target_calls += 1
        logits = out["logits"]
        greedy = logits[0].float().argmax(dim=-1).tolist()
        accepted = 0
        while accepted < n and drafts[accepted] == greedy[accepted]:
            accepted += 1
        cache = cache_of(out)
        crop_cache(cache, start + 1 + accepted)
        self.verified = [(drafts[i], logits[:, i + 1 : i + 2]) for i in range(accepted)]
        if n:
            self.passes += 1
            self.proposed += n
            self.accepted += accepted
        return {"logits": logits[:, :1], "cache": cache}

    def finish(self, row: RowState) -> None:
        row.counters.update(
            draft_tokens_proposed=float(self.proposed),
            draft_tokens_accepted=float(self.accepted),
            acceptance_length_mean=self.accepted / self.passes if self.passes else float("nan"),
            target_forward_calls=float(self.target_calls),
            draft_forward_calls=float(self.drafter.calls),
        )


def check_same_tokenizer(target, draft, draft_ref: str) -> None:
    """Raise ``ValueError`` unless the two tokenizers map the same strings to the same ids."""
    a, b = target.get_vocab(), draft.get_vocab()
    if a != b:
        differ = sorted(set(a.items()) ^ set(b.items()), key=lambda item: item[1])[:3]
        raise ValueError(
            f"speculative: draft model {draft_ref!r} has a different tokenizer from the target "
            f"({len(b)} vs {len(a)} tokens; e.g. {differ}); drafts must use the target's token ids"
        )


@register_adapter("speculative")
class Speculative(Adapter):
    paper = "Fast Inference from Transformers via Speculative Decoding (+ prompt lookup; LayerSkip-style self-speculation)"
    arxiv = "2211.17192"
    Params = SpeculativeParams
    counters = {
        "draft_tokens_proposed": "draft tokens sent to verification",
        "draft_tokens_accepted": "draft tokens the target's greedy choice confirmed",
        "acceptance_length_mean": "accepted drafts per verification pass (mean)",
        "target_forward_calls": "target forward passes (prefill + decode/verification)",
        "draft_forward_calls": "draft model forward passes (0 for prompt_lookup)",
    }
    batchable = False

    def check(self, max_new_tokens: int) -> None:
        if self.params.draft == "model":
            check_companion_ref(self.params.draft_model, "draft_model")

    def prepare_model(self, base):
        p = self.params
        self._draft_model = None
        self._draft_bytes = 0
        self._vocab_limit = base.model.get_input_embeddings().num_embeddings  # ids the target can embed
        if p.draft == "depth_subnet":
            depth = len(base.model.model.layers)
            if p.draft_layers >= depth:
                raise ValueError(f"speculative: draft_layers={p.draft_layers} must be below the model's {depth} layers")
            self._draft_model = truncate_layers(base.model, p.draft_layers)
        elif p.draft == "model":
            from harness.models import param_bytes

            draft = load_companion(p.draft_model, base)
            check_same_tokenizer(base.tokenizer, draft.tokenizer, p.draft_model)
            self._draft_model = draft.model
            self._draft_bytes = param_bytes(draft.model)
        return base.model

    def wrap(self, base, batch_size: int = 1, max_new_tokens: int = 256):
        variant = super().wrap(base, batch_size, max_new_tokens)
        variant.param_bytes += self._draft_bytes  # a separate draft model's weights are held too
        return variant

    def make_policy(self, tokenizer) -> DecodePolicy:
        if self.params.draft == "prompt_lookup":
            drafter = PromptLookupDrafter(self.params.ngram_max, self.params.ngram_min)
        else:
            drafter = ModelDrafter(self._draft_model, vocab_limit=self._vocab_limit)
        return SpeculativePolicy(self.params.num_draft_tokens, drafter)
