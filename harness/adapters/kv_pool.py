"""``kv_pool``: KV-head pooling — average groups of key/value heads into fewer at load time.

EfficientLLM's attention axis (arXiv 2505.13840, "EfficientLLM: Efficiency Evaluation of Large
Language Models") compares MHA, GQA and MQA. Here a trained model's attention is turned into
GQA/MQA with fewer KV heads **without uptraining**: the mean-pooling conversion of "GQA: Training
Generalized Multi-Query Transformer Models from Multi-Head Checkpoints" (arXiv 2305.13245, §2.1),
minus the uptraining step, so the quality drop is measured as is.

For Llama-style attention (``k_proj`` / ``v_proj`` linears whose output rows are ``n_kv`` heads of
``head_dim`` rows each): the rows of each group of ``g = n_kv / num_kv_heads`` consecutive KV heads
(and their biases, if any) are averaged into one head. Query head ``h`` used KV head
``h // (n_q / n_kv)``, which falls in pooled head ``h // (n_q / num_kv_heads)``: exactly the head
``transformers``' GQA repeat gives it once ``num_key_value_heads`` and each attention module's
``num_key_value_groups`` are set, so the query→KV mapping stays right. (Averaging before RoPE
equals averaging after it: the rotation is linear and the same for every head.)

The variant is a copy of the base whose modules are new but whose tensors are shared, except the
new ``k_proj`` / ``v_proj``; the base is untouched. The KV cache shrinks by ``n_kv /
num_kv_heads`` (:func:`kv_cache_bytes` measures it on a real ``DynamicCache``), and ``param_bytes``
by the dropped K/V rows.

Measured on the embedded SmolLM2-135M (9 query heads, 3 KV heads; fp32, CPU; greedy top-1
agreement with the base, teacher-forced on the base's own 128-token greedy answers to 3 prompts =
384 tokens): ``num_kv_heads`` 3 = the base (100 %, same cache); ``num_kv_heads`` 1 (MQA): 2.3 %
agreement (the model's output collapses without uptraining), KV cache after a 197-token prefill
9,077,760 → 3,025,920 bytes (3x smaller), weights 538.1 → 520.4 MB.

Counter per request: ``kv_heads`` (= ``num_kv_heads``).
"""

from __future__ import annotations

import copy

import torch
from pydantic import Field

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.generation import DecodePolicy, StaticCounters


class KvPoolParams(AdapterParams):
    num_kv_heads: int = Field(1, ge=1, description="KV heads after pooling; must divide the model's KV head count")


def kv_head_count(config) -> int:
    """The model's KV heads (``num_key_value_heads``, else ``num_attention_heads``: MHA)."""
    return getattr(config, "num_key_value_heads", None) or config.num_attention_heads


def _pooled_linear(linear: torch.nn.Linear, n_kv: int, n_new: int) -> torch.nn.Linear:
    """A new linear whose output rows, seen as ``n_kv`` heads, are averaged in groups of ``n_kv // n_new``."""
    group = n_kv // n_new
    out, inp = linear.weight.shape
    head_dim = out // n_kv
    pooled = torch.nn.Linear(inp, n_new * head_dim, bias=linear.bias is not None,
                             device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        pooled.weight.copy_(linear.weight.view(n_new, group, head_dim, inp).mean(dim=1).reshape(n_new * head_dim, inp))
        if linear.bias is not None:
            pooled.bias.copy_(linear.bias.view(n_new, group, head_dim).mean(dim=1).reshape(-1))
    return pooled.requires_grad_(False)


def pool_kv_heads(model, num_kv_heads: int):
    """A copy of a ``transformers`` Llama-style decoder-only LM with ``num_kv_heads`` KV heads.

    Module objects are new, tensors are shared with ``model`` except the pooled ``k_proj`` /
    ``v_proj``; ``model`` itself is not changed.

    Raises:
        ValueError: ``num_kv_heads`` does not divide the model's KV head count, or the model's
            attention modules have no ``k_proj`` / ``v_proj`` linears.
    """
    n_kv = kv_head_count(model.config)
    if n_kv % num_kv_heads:
        raise ValueError(f"kv_pool: num_kv_heads={num_kv_heads} does not divide the model's {n_kv} KV heads")
    memo = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    pooled = copy.deepcopy(model, memo)  # new modules and config, shared tensors
    attentions = [m for m in pooled.modules() if hasattr(m, "k_proj") and hasattr(m, "v_proj")]
    if not attentions or not all(isinstance(m.k_proj, torch.nn.Linear) for m in attentions):
        raise ValueError(f"kv_pool: {type(model).__name__} has no attention with k_proj/v_proj linears")
    n_q = model.config.num_attention_heads
    for attn in attentions:
        attn.k_proj = _pooled_linear(attn.k_proj, n_kv, num_kv_heads)
        attn.v_proj = _pooled_linear(attn.v_proj, n_kv, num_kv_heads)
        if hasattr(attn, "num_key_value_groups"):
            attn.num_key_value_groups = n_q // num_kv_heads
        if hasattr(attn, "num_key_value_heads"):
            attn.num_key_value_heads = num_kv_heads
        if hasattr(attn, "config"):
            attn.config = pooled.config
    pooled.config.num_key_value_heads = num_kv_heads
    return pooled.eval()


def kv_cache_bytes(model, input_ids: torch.Tensor) -> int:
    """Bytes of the keys and values a ``transformers`` ``DynamicCache`` holds after a prefill of
    ``input_ids`` (shape ``[batch, tokens]``): measured on the cache's tensors."""
    from transformers import DynamicCache

    from harness.generation import cache_kwarg

    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=input_ids.to(model.device), use_cache=True, **{cache_kwarg(model): cache})
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


@register_adapter("kv_pool")
class KvPool(Adapter):
    paper = ("EfficientLLM: Efficiency Evaluation of Large Language Models (attention axis: MQA/GQA by the "
             "mean-pooled KV heads of GQA, arXiv 2305.13245, without uptraining)")
    arxiv = "2505.13840"
    Params = KvPoolParams
    counters = {"kv_heads": "key/value heads per layer after pooling (num_kv_heads)"}
    supports_loglikelihood = True  # a model transform: a plain forward pass

    def prepare_model(self, base):
        return pool_kv_heads(base.model, self.params.num_kv_heads)

    def make_policy(self, tokenizer) -> DecodePolicy:
        return StaticCounters({"kv_heads": float(self.params.num_kv_heads)})
