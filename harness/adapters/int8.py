"""``int8``: 8-bit integer quantization of every decoder-layer ``nn.Linear``.

Follows EfficientLLM's quantization axis (arXiv 2505.13840, "EfficientLLM: Efficiency
Evaluation of Large Language Models") with torchao's int8 configs:

* ``weight_only`` (default): per-channel symmetric int8 weights, dequantized inside the
  matmul (W8A16/W8A32). Measured on the embedded model on 2 CPU cores: ~0.8× fp32 decode
  speed at batch 8, 84 % greedy top-1 agreement on 512 tokens.
* ``dynamic``: int8 weights and per-token dynamically quantized int8 activations (W8A8).

The tied token embedding / LM head is left in full precision (quantizing the head moves
every logit; it is also shared with the embedding). Quantization is applied to a deep
copy, so the shared base model stays intact. ``param_bytes`` counts the packed int8
weights and their scales (via the serialized tensor subclasses), so the variant never
reports 0 bytes for a quantized module: ~2.44× smaller than fp32 on the embedded model.

Requires ``torchao`` (a core dependency).
"""

from __future__ import annotations

import copy
from typing import Literal

from pydantic import Field

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.generation import StaticCounters

LAYER_PREFIX = "model.layers."


class Int8Params(AdapterParams):
    mode: Literal["weight_only", "dynamic"] = Field(
        "weight_only", description="weight_only = W8 with full-precision activations; dynamic = W8A8"
    )


def quantized_linear_names(model) -> list[str]:
    """Qualified names of the ``nn.Linear`` modules the adapter targets (decoder layers only)."""
    import torch

    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith(LAYER_PREFIX)]


@register_adapter("int8")
class Int8(Adapter):
    paper = "EfficientLLM: Efficiency Evaluation of Large Language Models (quantization axis, via torchao)"
    arxiv = "2505.13840"
    Params = Int8Params
    counters = {"quantized_linears": "number of decoder-layer nn.Linear modules quantized to int8"}
    supports_loglikelihood = True  # a model transform: a plain forward pass

    def prepare_model(self, base):
        import torch

        try:
            from torchao.quantization import (
                Int8DynamicActivationInt8WeightConfig,
                Int8WeightOnlyConfig,
                quantize_,
            )
        except ImportError as exc:  # pragma: no cover - torchao is a core dependency
            raise ImportError("the int8 adapter needs torchao: pip install torchao") from exc
        model = copy.deepcopy(base.model)
        config = Int8WeightOnlyConfig() if self.params.mode == "weight_only" else Int8DynamicActivationInt8WeightConfig()
        targets = set(quantized_linear_names(model))
        quantize_(model, config, filter_fn=lambda mod, fqn: isinstance(mod, torch.nn.Linear) and fqn in targets)
        self.quantized = len(targets)
        return model.eval()

    def make_policy(self, tokenizer):
        return StaticCounters({"quantized_linears": float(self.quantized)})
