"""``entropy_switch``: decode with a small model, hand uncertain stretches to a large one.

Follows "Entropy Adaptive Decoding: Dynamic Model Switching for Efficient Inference"
(Simonds, arXiv 2502.06833), training-free as in the paper. Two causal LMs with the same
tokenizer share one output sequence; each keeps its own KV cache. For every token:

1. the active model gives next-token logits; their entropy ``H_t = -Σ p log2 p`` (bits,
   of the untempered distribution) joins a rolling window of the last ``window`` (``w``)
   tokens; ``H̄_t`` is the window's mean;
2. while the small model is active and ``H̄_t > tau``, the large model takes over *at this
   token*: it catches up with one prefill over every token it has not seen, and the token
   comes from its logits (its entropy replaces the small model's in the window);
3. while the large model is active, once ``H̄_t <= tau`` for ``min_dwell`` consecutive
   tokens, the small model takes over from the next token on (catching up the same way).

So a token is emitted by the small model only when the small model's own rolling entropy
stays at or below ``tau``: ``tau = -inf`` reproduces the large model's greedy output and
``tau = +inf`` the small model's (tests). Escalating at the current token, rather than from
the next one, is our reading of the paper's per-token switch; it costs one discarded small
forward per switch to the large model. Decoding is greedy (the harness measures greedy
decoding; the paper samples, with the entropy taken before temperature).

The small model is either ``small_layers: k`` — a training-free depth sub-model of the base
(its first ``k`` decoder layers + final norm + head, :func:`~harness.adapters.depth_subnet.truncate_layers`,
weights shared; the embedded default) — or ``small_model``: any model reference loaded
through :mod:`harness.models` (e.g. Qwen2.5-0.5B-Instruct under Qwen2.5-7B-Instruct), whose
tokenizer must have exactly the base's vocabulary (the tokenizers are compared, not the models'
embedding sizes, which may be padded differently: Qwen2.5-0.5B's 151,936 rows vs 7B's 152,064).

The savings are real: while the small model is active the large one runs no forward at all
(forward-hook counts in the tests). Decoding is at batch size 1 (each sequence switches at
its own tokens; ``batchable = False``).

Calibration (embedded model, small = its first 16 of 30 layers, chat-templated GSM8K and
MATH-500 prompts, 128 tokens): the small model's rolling entropy has p10/p50/p90 =
1.32/1.78/2.28 bits, and the default ``tau = 2.0`` gave large-model shares of 0.18–0.85 (mean
0.53) on the first four problems of each. Set ``tau`` from such a measurement for other pairs.

Counters per request (``n`` = output tokens, EOS excluded; ``n_L``/``n_S`` = those emitted by
the large/small model; ``P`` = parameter count of what each model runs):

* ``large_model_token_share`` = ``n_L / n``;
* ``switches``: model changes in either direction;
* ``relative_cost`` = ``(n_L·P_L + n_S·P_S) / (n·P_L)`` — the paper's token-level cost
  model. It leaves out the catch-up prefills and the discarded small forward at each
  escalation; whether wall time follows is what the cell's latency measures.
"""

from __future__ import annotations

import math
from collections import deque

import torch
from pydantic import Field, model_validator

from harness.adapters.base import Adapter, AdapterParams, check_companion_ref, load_companion, register_adapter
from harness.adapters.depth_subnet import truncate_layers
from harness.generation import DecodePolicy, RowState, cache_kwarg, cache_of

LARGE, SMALL = "large", "small"
DEFAULT_SMALL_LAYERS = 16


class EntropySwitchParams(AdapterParams):
    tau: float = Field(
        2.0, description="bits; to the large model when the rolling mean entropy exceeds it (-inf: large only, inf: small only)"
    )
    window: int = Field(5, ge=1, description="tokens in the rolling entropy mean (w)")
    min_dwell: int = Field(5, ge=1, description="large-model tokens with the mean <= tau before switching back")
    small_layers: int | None = Field(
        None, ge=1, description=f"small model = the base's first k layers (default {DEFAULT_SMALL_LAYERS} unless small_model)"
    )
    small_model: str | None = Field(None, description="small model reference (same tokenizer), instead of small_layers")

    @model_validator(mode="before")
    @classmethod
    def _default_small_layers(cls, data):
        if isinstance(data, dict) and data.get("small_model") is None and data.get("small_layers") is None:
            data = {**data, "small_layers": DEFAULT_SMALL_LAYERS}  # one canonical form for the params hash
        return data

    @model_validator(mode="after")
    def _one_small_model(self):
        if self.small_layers is not None and self.small_model is not None:
            raise ValueError("give either small_layers or small_model, not both")
        if math.isnan(self.tau):
            raise ValueError("tau must be a number (use -inf or inf for the extremes)")
        return self


def entropy_bits(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in bits of ``softmax(logits)`` over the last dimension.

    Args:
        logits: ``[..., vocab]``, any float dtype (computed in float32).

    Returns:
        ``[...]`` float32 entropies, in ``[0, log2(vocab)]``.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    plogp = torch.where(torch.isfinite(logp), logp.exp() * logp, 0.0)  # masked (-inf) logits add 0, not NaN
    return -plogp.sum(dim=-1) / math.log(2.0)


def parameter_count(model) -> int:
    """Parameters a model runs (shared/tied tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def check_same_vocab(large_tokenizer, small_tokenizer) -> None:
    """Raise ``ValueError`` unless the two tokenizers map the same strings to the same ids."""
    large, small = large_tokenizer.get_vocab(), small_tokenizer.get_vocab()
    if large != small:
        only_l = len(large.keys() - small.keys())
        only_s = len(small.keys() - large.keys())
        moved = sum(1 for k in large.keys() & small.keys() if large[k] != small[k])
        raise ValueError(
            "entropy_switch needs a small model with the base's tokenizer: vocabularies differ "
            f"({len(large)} vs {len(small)} entries; {only_l} only in the base, {only_s} only in the small "
            f"model, {moved} with different ids)"
        )


class SwitchPolicy(DecodePolicy):
    """Per-request switching state (batch size 1). The decode loop's ``model`` is the large
    model; the small one and both KV caches live here.

    Attributes:
        rolling_bits: ``H̄_t`` after each token's decision (bits), for calibration and tests.
        emitters: ``"large"``/``"small"`` per token, in order.
        calls: forward calls per model (each one step or one catch-up prefill).
    """

    continuous = False  # the small model's cache and the switching state belong to the batch

    def __init__(self, params: EntropySwitchParams, small, p_large: int, p_small: int):
        self.p = params
        self.small = small
        self.p_large, self.p_small = p_large, p_small
        self.tokens: list[int] = []
        self.caches: dict[str, object] = {LARGE: None, SMALL: None}
        self.seen = {LARGE: 0, SMALL: 0}
        self.active = SMALL
        self.window: deque[float] = deque(maxlen=params.window)
        self.calm = 0
        self.switches = 0
        self.emitters: list[str] = []
        self.rolling_bits: list[float] = []
        self.calls = {LARGE: 0, SMALL: 0}

    def _catch_up(self, which: str, large) -> torch.Tensor:
        """Feed ``which`` every token it has not seen (one forward); its last logits ``[1, vocab]``."""
        model = large if which == LARGE else self.small
        device = next(model.parameters()).device
        start, end = self.seen[which], len(self.tokens)
        inputs = {
            "input_ids": torch.tensor([self.tokens[start:end]], dtype=torch.long, device=device),
            "position_ids": torch.arange(start, end, device=device).unsqueeze(0),
            "attention_mask": torch.ones((1, end), dtype=torch.long, device=device),
            "use_cache": True,
            "logits_to_keep": 1,
        }
        if self.caches[which] is not None:
            inputs[cache_kwarg(model)] = self.caches[which]
        out = model(**inputs)
        self.caches[which] = cache_of(out)
        self.seen[which] = end
        self.calls[which] += 1
        return out["logits"][:, -1, :]

    def _mean(self) -> float:
        return sum(self.window) / len(self.window)

    def forward(self, model, **inputs):
        ids = inputs["input_ids"]
        if ids.shape[0] != 1:
            raise ValueError(f"entropy_switch decodes at batch size 1 (got a batch of {ids.shape[0]})")
        self.tokens.extend(ids[0].tolist())
        logits = self._catch_up(self.active, model)
        self.window.append(entropy_bits(logits)[0].item())
        if self.active == SMALL and self._mean() > self.p.tau:
            self.active, self.calm = LARGE, 0
            self.switches += 1
            logits = self._catch_up(LARGE, model)
            self.window[-1] = entropy_bits(logits)[0].item()
        emitter = self.active
        mean = self._mean()
        if self.active == LARGE:
            self.calm = self.calm + 1 if mean <= self.p.tau else 0
            if self.calm >= self.p.min_dwell:
                self.active, self.calm = SMALL, 0
                self.switches += 1
        self.emitters.append(emitter)
        self.rolling_bits.append(mean)
        return {"logits": logits.unsqueeze(1), "cache": self.caches[emitter]}

    def finish(self, row: RowState) -> None:
        emitted = self.emitters[: len(row.token_ids)]  # one forward per chosen token; EOS not kept
        n = len(emitted)
        n_large = emitted.count(LARGE)
        n_small = n - n_large
        nan = float("nan")
        row.counters["large_model_token_share"] = n_large / n if n else nan
        row.counters["switches"] = float(self.switches)
        row.counters["relative_cost"] = (
            (n_large * self.p_large + n_small * self.p_small) / (n * self.p_large) if n else nan
        )


@register_adapter("entropy_switch")
class EntropySwitch(Adapter):
    paper = "Entropy Adaptive Decoding: Dynamic Model Switching for Efficient Inference"
    arxiv = "2502.06833"
    Params = EntropySwitchParams
    counters = {
        "large_model_token_share": "share of output tokens emitted by the large model",
        "switches": "model switches in either direction",
        "relative_cost": "(n_L·P_L + n_S·P_S) / (n·P_L), P = parameters each model runs",
    }
    batchable = False

    def check(self, max_new_tokens: int) -> None:
        if self.params.small_model is not None:
            check_companion_ref(self.params.small_model, "small_model")

    def prepare_model(self, base):
        """Build the small model (``self.small``) and return the large one (the base model).

        Raises:
            ValueError: ``small_layers`` not below the base's depth, or a ``small_model``
                whose tokenizer vocabulary differs from the base's.
            harness.models.ModelError: ``small_model`` cannot be loaded.
        """
        large = base.model
        if self.params.small_model is not None:
            loaded = load_companion(self.params.small_model, base)
            check_same_vocab(base.tokenizer, loaded.tokenizer)
            self.small = loaded.model
        else:
            k = self.params.small_layers
            depth = len(large.model.layers)
            if k >= depth:
                raise ValueError(f"entropy_switch: small_layers={k} must be below the base's {depth} layers")
            self.small = truncate_layers(large, k)
        self.p_large, self.p_small = parameter_count(large), parameter_count(self.small)
        return large

    def make_policy(self, tokenizer) -> DecodePolicy:
        return SwitchPolicy(self.params, self.small, self.p_large, self.p_small)

    def wrap(self, base, batch_size: int = 1, max_new_tokens: int = 256):
        """As :meth:`Adapter.wrap`; ``param_bytes`` also counts a separately loaded small model."""
        from harness.models import param_bytes

        variant = super().wrap(base, batch_size=batch_size, max_new_tokens=max_new_tokens)
        if self.params.small_model is not None:
            variant.param_bytes += param_bytes(self.small)
        return variant
