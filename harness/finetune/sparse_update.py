"""Sparse backpropagation in the PockEngine style: only the last blocks (and the head) train.

Source: Zhu et al., "PockEngine: Sparse and Efficient Fine-tuning in a Pocket", arXiv
2310.17752. PockEngine prunes the backward graph at compile time so that frozen layers neither
compute weight gradients nor keep activations for them; the paper's sparse schemes update the
weights of the last blocks and the biases of some blocks before them. Here: the last ``blocks``
transformer blocks, the pooler and the head train fully; the ``bias_blocks`` blocks before them
train only their biases; the frozen prefix (embeddings and the first blocks) runs under
``torch.no_grad`` so autograd saves nothing for it and no backward runs through it.
"""

from __future__ import annotations

from pydantic import Field

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune
from harness.finetune.encoder import backbone, classifier_model, classify, embed, layers, run_layers


class SparseUpdateParams(FinetuneParams):
    """How much of the top of the network trains."""

    blocks: int = Field(2, ge=0, description="last transformer blocks whose every parameter trains")
    bias_blocks: int = Field(0, ge=0, description="blocks before those whose biases train")


@register_finetune("sparse_update")
class SparseUpdate(FinetuneAdapter):
    """Frozen prefix under no_grad; the last blocks, pooler and head train."""

    paper = "PockEngine: Sparse and Efficient Fine-tuning in a Pocket"
    arxiv = "2310.17752"
    Params = SparseUpdateParams
    counters = {"frozen_blocks": "transformer blocks run without autograd"}

    def first_trained(self, model) -> int:
        """Index of the first block that needs autograd (bias-only or full)."""
        n = len(layers(model))
        k = self.params.blocks + self.params.bias_blocks
        if k > n:
            raise ValueError(f"sparse_update: blocks + bias_blocks = {k} > {n} blocks in the model")
        return n - k

    def prepare(self, model, ctx):
        blocks = layers(model)
        first = self.first_trained(model)
        full_from = len(blocks) - self.params.blocks
        for p in model.parameters():
            p.requires_grad_(False)
        for i, block in enumerate(blocks[first:], start=first):
            for name, p in block.named_parameters():
                p.requires_grad_(i >= full_from or name.endswith(".bias"))
        bert = backbone(model)
        if bert.pooler is not None:
            for p in bert.pooler.parameters():
                p.requires_grad_(True)
        for p in classifier_model(model).classifier.parameters():
            p.requires_grad_(True)
        return model

    def result_counters(self, model) -> dict[str, float]:
        return {"frozen_blocks": float(self.first_trained(model))}

    def logits(self, model, batch):
        import torch

        first = self.first_trained(model)
        with torch.no_grad():
            hidden, mask = embed(model, batch)
            hidden = run_layers(model, hidden, mask, 0, first)
        hidden = run_layers(model, hidden, mask, first, None)
        return classify(model, hidden)
