"""BitFit: only the bias terms (and the new classification head) train.

Source: Ben Zaken, Ravfogel and Goldberg, "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models", arXiv 2106.10199. Every ``bias`` of the encoder
(attention, feed-forward, LayerNorm, pooler) trains, every weight matrix stays frozen; the task
head is new and trains whole (its weight and bias).
"""

from __future__ import annotations

from pydantic import Field

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune
from harness.finetune.encoder import classifier_model


class BitFitParams(FinetuneParams):
    """Which biases train."""

    layer_norm: bool = Field(True, description="also train LayerNorm biases (the paper trains every bias)")


def bias_names(model, layer_norm: bool = True) -> list[str]:
    """Names of the bias parameters BitFit trains (LayerNorm ones only with ``layer_norm``)."""
    names = []
    for name, p in model.named_parameters():
        if name.endswith(".bias") and (layer_norm or "LayerNorm" not in name):
            names.append(name)
    return names


@register_finetune("bitfit")
class BitFit(FinetuneAdapter):
    """Biases plus the task head train; every other weight is frozen."""

    paper = "BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked Language-models"
    arxiv = "2106.10199"
    Params = BitFitParams

    def prepare(self, model, ctx):
        trainable = set(bias_names(model, self.params.layer_norm))
        for name, p in model.named_parameters():
            p.requires_grad_(name in trainable)
        for p in classifier_model(model).classifier.parameters():
            p.requires_grad_(True)
        return model
