"""Sorted depth fine-tuning: one shared head trained on several depth exits at once.

Source: Valipour et al., "SortedNet: A Scalable and Generalized Framework for Training Modular
Deep Neural Networks", arXiv 2309.00255 (and its LLM form, Sorted Fine-Tuning/SoFT, Kavehzadeh
et al., arXiv 2309.08532): nested sub-networks that share parameters are trained together, so
each depth prefix is a usable model. Here every step's loss is the mean cross-entropy of the
shared pooler + head applied after each depth in ``depths`` (all parameters train); evaluation
reports every depth's metric (``counter_<metric>_depth_<d>``) and the deepest exit as the cell's
headline figure.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune
from harness.finetune.encoder import classify, embed, layers, run_layers


class SortedDepthParams(FinetuneParams):
    """Depth exits (number of transformer blocks before the shared head)."""

    depths: tuple[int, ...] = Field((2, 4, 6), min_length=1, description="exit depths, ascending")

    @field_validator("depths")
    @classmethod
    def _ascending(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 1 for d in value) or list(value) != sorted(set(value)):
            raise ValueError(f"depths must be distinct positive block counts in ascending order, got {list(value)}")
        return value


@register_finetune("sorted_depth")
class SortedDepth(FinetuneAdapter):
    """All parameters train on the mean loss of every depth exit (shared head)."""

    paper = "SortedNet: A Scalable and Generalized Framework for Training Modular Deep Neural Networks"
    arxiv = "2309.00255"
    Params = SortedDepthParams

    def _exits(self, model, batch) -> dict[int, object]:
        n = len(layers(model))
        if self.params.depths[-1] > n:
            raise ValueError(f"sorted_depth: depth {self.params.depths[-1]} > {n} blocks in the model")
        hidden, mask = embed(model, batch)
        out, done = {}, 0
        for depth in self.params.depths:
            hidden = run_layers(model, hidden, mask, done, depth)
            done = depth
            out[depth] = classify(model, hidden)
        return out

    def logits(self, model, batch):
        return self._exits(model, batch)[self.params.depths[-1]]

    def loss(self, model, batch):
        import torch.nn.functional as F

        exits = self._exits(model, batch)
        return sum(F.cross_entropy(lg, batch["labels"]) for lg in exits.values()) / len(exits)

    def predict(self, model, batch):
        exits = self._exits(model, batch)
        out = {f"depth_{d}": lg for d, lg in exits.items()}
        out[""] = exits[self.params.depths[-1]]
        return out
