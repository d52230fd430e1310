"""``early_exit``: stop a token's forward pass once consecutive layers' states saturate.

Follows MuE ("You Need Multiple Exiting: Dynamic Early Exiting for Accelerating Unified
Vision Language Model", arXiv 2211.11152): exit when the similarity of consecutive layers'
hidden states reaches a threshold, ``cos(h_l, h_{l-1}) >= tau`` after ``min_layers``, and
decode from that layer through the final norm and the LM head — training-free. For a
decoder, later tokens attend to the skipped layers' keys and values, so those are filled
from the exit state (state propagation, as in CALM: "Confident Adaptive Language Modeling",
arXiv 2207.07836): each skipped layer's K/V projections of the exit hidden state (after that
layer's input norm, with rotary positions) go into the KV cache.

Scope: Llama-family decoders (``model.model.{embed_tokens, layers, norm, rotary_emb}``);
decode steps run at batch size 1 (each sequence exits at its own depth); the prompt's prefill
runs every layer. The skipped layers are really not computed (forward-hook counts in the
tests); whether wall time follows is measured in ``benchmarks/``, not asserted.

Counter per request: ``layers_executed_mean`` — decoder layers run per generated token,
averaged over the decode steps (the first token comes from the full-depth prefill).
"""

from __future__ import annotations

import torch
from pydantic import Field

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.generation import DecodePolicy, cache_kwarg, cache_of


class EarlyExitParams(AdapterParams):
    tau: float = Field(0.95, description="exit when cos(h_l, h_{l-1}) >= tau; tau > 1 never exits")
    min_layers: int = Field(4, ge=1, description="layers always run before an exit is allowed")


class ExitPolicy(DecodePolicy):
    """Per-batch early-exit state (batch size 1)."""

    continuous = False  # its counter belongs to the batch

    def __init__(self, params: EarlyExitParams):
        self.p = params
        self.executed: list[int] = []

    def forward(self, model, **inputs):
        ids = inputs["input_ids"]
        if ids.shape[1] != 1:  # prefill: the full model
            return model(**inputs)
        if ids.shape[0] != 1:
            raise ValueError("early_exit decodes at batch size 1")
        return self._step(model, ids, inputs["position_ids"], cache_of(inputs))

    @torch.inference_mode()
    def _step(self, model, ids, position_ids, cache):
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        inner = model.model
        layers = inner.layers
        h = inner.embed_tokens(ids)
        pe = inner.rotary_emb(h, position_ids)
        kw = cache_kwarg(layers[0])
        exit_at = len(layers)
        for i, layer in enumerate(layers):
            out = layer(h, attention_mask=None, position_ids=position_ids, use_cache=True, position_embeddings=pe, **{kw: cache})
            new = out[0] if isinstance(out, tuple) else out
            saturated = torch.nn.functional.cosine_similarity(new.float(), h.float(), dim=-1).min().item() >= self.p.tau
            h = new
            if i + 1 >= self.p.min_layers and saturated and i + 1 < len(layers):
                exit_at = i + 1
                break
        cos, sin = pe
        for j in range(exit_at, len(layers)):  # propagate the exit state into the skipped layers' KV
            attn = layers[j].self_attn
            x = layers[j].input_layernorm(h)
            shape = (*x.shape[:-1], -1, attn.head_dim)
            k = attn.k_proj(x).view(shape).transpose(1, 2)
            v = attn.v_proj(x).view(shape).transpose(1, 2)
            _, k = apply_rotary_pos_emb(k, k, cos, sin)
            cache.update(k, v, j)
        self.executed.append(exit_at)
        return {"logits": model.lm_head(inner.norm(h)), "cache": cache}

    def finish(self, row) -> None:
        row.counters["layers_executed_mean"] = (
            sum(self.executed) / len(self.executed) if self.executed else float("nan")
        )


@register_adapter("early_exit")
class EarlyExit(Adapter):
    paper = "You Need Multiple Exiting: Dynamic Early Exiting for Accelerating Unified Vision Language Model (MuE)"
    arxiv = "2211.11152"
    Params = EarlyExitParams
    counters = {"layers_executed_mean": "decoder layers run per decode-step token (mean)"}
    batchable = False

    def make_policy(self, tokenizer) -> DecodePolicy:
        return ExitPolicy(self.params)
