"""``depth_subnet``: run only the first ``k`` decoder layers (a nested depth sub-model).

Follows SortedNet ("SortedNet: A Scalable and Generalized Framework for Training Modular
Deep Neural Networks", arXiv 2309.00255): sub-models made of the first ``k`` layers of a
model, followed by the model's own final norm and LM head. Here with **no training** — the
zero-training lower bound of sorted/nested models (the trained SortedNet/SoFT variant is a
fine-tuning technique and belongs to that track).

The savings are real: the variant is a shallow copy of the base whose layer list holds only
the first ``k`` layer modules (weights shared, nothing copied, the base untouched), so layers
``k..L-1`` are never computed and never get a KV cache. ``param_bytes`` counts what the
variant runs (embedding, ``k`` layers, norm, head).

Counter per request: ``layers_executed`` (= ``k``).
"""

from __future__ import annotations

import copy

import torch
from pydantic import Field

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.generation import DecodePolicy, StaticCounters


class DepthSubnetParams(AdapterParams):
    layers: int = Field(16, ge=1, description="decoder layers kept, from the bottom (k)")


def truncate_layers(model, k: int):
    """A shallow copy of a ``transformers`` decoder-only LM running its first ``k`` layers.

    Module objects (and so weights) are shared with ``model``; only the containers are new,
    so ``model`` itself is not changed.

    Raises:
        ValueError: ``k`` exceeds the model's depth, or the model has no ``model.layers``.
    """
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"{type(model).__name__} has no model.layers list: depth_subnet needs a decoder-only LM")
    if k > len(layers):
        raise ValueError(f"depth_subnet: layers={k} exceeds the model's {len(layers)} decoder layers")
    outer = copy.copy(model)
    outer._modules = dict(model._modules)
    sub = copy.copy(inner)
    sub._modules = dict(inner._modules)
    sub.layers = torch.nn.ModuleList(list(layers[:k]))
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = k
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types[:k])
    sub.config = config
    outer.model = sub
    outer.config = config
    return outer


@register_adapter("depth_subnet")
class DepthSubnet(Adapter):
    paper = "SortedNet: A Scalable and Generalized Framework for Training Modular Deep Neural Networks (training-free)"
    arxiv = "2309.00255"
    Params = DepthSubnetParams
    counters = {"layers_executed": "decoder layers run per token (k)"}
    supports_loglikelihood = True  # a model transform: a plain forward pass

    def prepare_model(self, base):
        return truncate_layers(base.model, self.params.layers)

    def make_policy(self, tokenizer) -> DecodePolicy:
        return StaticCounters({"layers_executed": float(self.params.layers)})
