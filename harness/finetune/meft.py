"""MEFT: reversible adapters, so training keeps (almost) no activations for backward.

Source: Liao, Tan and Monz, "Make Pre-trained Model Reversible: From Parameter to Memory
Efficient Fine-Tuning", arXiv 2306.00477 (MEFT_1 architecture). Every pretrained block ``L_n``
becomes one reversible coupling of two streams, with two small bottleneck adapters
``A_n`` (inside ``F``) and ``G_n`` the only new trainable parameters::

    F_n(x) = L_n(x) + A_n(L_n(x))            (the frozen block plus an adapter)
    y1 = lam * x1 + F_n(x2)
    y2 = beta * x2 + G_n(y1)
    next block's (x1, x2) = (y2, y1)          (streams swap, so F_{n+1} reads F_n's output)

Both streams start as the embedding output; the head reads ``y1`` of the last block. With the
adapters' up-projections initialised to zero and a small ``lam``, the model starts at the
pretrained network up to ``lam`` times a hidden state (MEFT's "starting point" argument; the
last block needs no ``G``). The coupling is exactly invertible::

    x2 = (y2 - G_n(y1)) / beta,   x1 = (y1 - F_n(x2)) / lam

so the stack runs forward under ``no_grad`` keeping only the last block's two outputs, and the
backward pass rebuilds each block's inputs from its outputs, block by block from the top, and
back-propagates through one block at a time (:class:`_ReversibleStack`). Dropout inside the
stack is off: a recomputed forward must equal the original one. Dividing by ``lam`` amplifies
rounding error by ``1/lam`` per block, which the paper discusses; the tests check the float64
reconstruction and the gradients against ordinary autograd.
"""

from __future__ import annotations

import torch
from pydantic import Field

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune
from harness.finetune.encoder import backbone, classifier_model, classify, embed, layers


class MeftParams(FinetuneParams):
    """Reversible-coupling settings."""

    bottleneck: int = Field(32, ge=1, description="hidden width of each adapter (A_n and G_n)")
    lam: float = Field(0.1, gt=0, description="scale of the x1 stream in y1 = lam x1 + F(x2)")
    beta: float = Field(1.0, gt=0, description="scale of the x2 stream in y2 = beta x2 + G(y1)")
    reversible: bool = Field(True, description="recompute activations in backward (False: ordinary autograd, same maths)")


def make_adapter(hidden: int, bottleneck: int) -> torch.nn.Sequential:
    """A bottleneck adapter ``up(gelu(down(x)))`` whose up-projection starts at zero (outputs 0)."""
    adapter = torch.nn.Sequential(
        torch.nn.Linear(hidden, bottleneck), torch.nn.GELU(), torch.nn.Linear(bottleneck, hidden)
    )
    torch.nn.init.normal_(adapter[0].weight, std=0.02)
    torch.nn.init.zeros_(adapter[0].bias)
    torch.nn.init.zeros_(adapter[2].weight)
    torch.nn.init.zeros_(adapter[2].bias)
    return adapter


class ReversibleBlock(torch.nn.Module):
    """One reversible coupling (module docstring) around a frozen block ``layer``.

    Args:
        layer: the pretrained block ``L_n`` (``[B, T, H], mask -> [B, T, H]``).
        adapter_f: ``A_n`` inside ``F_n``.
        adapter_g: ``G_n`` (``None``: ``G_n = 0``, for the last block).
        lam, beta: stream scales (both > 0).
    """

    def __init__(self, layer, adapter_f, adapter_g, lam: float, beta: float):
        super().__init__()
        self.layer, self.adapter_f, self.adapter_g = layer, adapter_f, adapter_g
        self.lam, self.beta = lam, beta

    def f(self, x, mask):
        out = self.layer(x, mask)
        out = out[0] if isinstance(out, tuple) else out
        return out + self.adapter_f(out)

    def g(self, y):
        return self.adapter_g(y) if self.adapter_g is not None else torch.zeros_like(y)

    def forward(self, x1, x2, mask):
        """``(x1, x2) -> (y2, y1)`` (swapped for the next block); shapes ``[B, T, H]``."""
        y1 = self.lam * x1 + self.f(x2, mask)
        y2 = self.beta * x2 + self.g(y1)
        return y2, y1

    def inverse(self, a, b, mask):
        """The inputs ``(x1, x2)`` from this block's outputs ``(a, b) = (y2, y1)``."""
        y1, y2 = b, a
        x2 = (y2 - self.g(y1)) / self.beta
        x1 = (y1 - self.f(x2, mask)) / self.lam
        return x1, x2


def build_blocks(model, bottleneck: int, lam: float, beta: float) -> torch.nn.ModuleList:
    """:class:`ReversibleBlock` around each of the model's blocks (adapters from the current RNG)."""
    hidden = backbone(model).config.hidden_size
    blocks = layers(model)
    return torch.nn.ModuleList(
        ReversibleBlock(
            layer,
            make_adapter(hidden, bottleneck),
            make_adapter(hidden, bottleneck) if i < len(blocks) - 1 else None,
            lam,
            beta,
        )
        for i, layer in enumerate(blocks)
    )


class ReversibleStack(torch.autograd.Function):
    """Runs blocks without saving activations; backward recomputes them from the outputs.

    ``apply(blocks, mask, x1, x2, *params) -> (a, b)``; ``params`` are the blocks' trainable
    parameters (passed so that autograd routes their gradients through this function).
    Saves only ``(a, b)``, two ``[B, T, H]`` tensors, whatever the depth.
    """

    @staticmethod
    def forward(ctx, blocks, mask, x1, x2, *params):
        with torch.no_grad():
            for block in blocks:
                x1, x2 = block(x1, x2, mask)
        ctx.blocks, ctx.mask, ctx.params = blocks, mask, params
        ctx.save_for_backward(x1, x2)
        return x1, x2

    @staticmethod
    def backward(ctx, grad_a, grad_b):
        a, b = ctx.saved_tensors
        grads: dict[int, torch.Tensor] = {}
        for block in reversed(ctx.blocks):
            with torch.no_grad():
                x1, x2 = block.inverse(a, b, ctx.mask)
            with torch.enable_grad():
                x1r, x2r = x1.detach().requires_grad_(True), x2.detach().requires_grad_(True)
                out_a, out_b = block(x1r, x2r, ctx.mask)
                trainable = [p for p in block.parameters() if p.requires_grad]
                got = torch.autograd.grad((out_a, out_b), (x1r, x2r, *trainable), (grad_a, grad_b), allow_unused=True)
            grad_a, grad_b = got[0], got[1]
            for p, g in zip(trainable, got[2:]):
                if g is not None:
                    grads[id(p)] = g if id(p) not in grads else grads[id(p)] + g
            a, b = x1, x2
        return (None, None, grad_a, grad_b, *[grads.get(id(p)) for p in ctx.params])


class MeftModel(torch.nn.Module):
    """A classification model whose block stack is reversible (see module docstring).

    ``forward(input_ids, attention_mask, token_type_ids) -> logits [B, num_labels]``.
    """

    def __init__(self, model, blocks: torch.nn.ModuleList, reversible: bool = True):
        super().__init__()
        self.model, self.blocks, self.reversible = model, blocks, reversible

    def run_stack(self, hidden, mask):
        """``[B, T, H] -> (a, b)``, the last block's outputs (``b`` feeds the head)."""
        if self.reversible:
            params = [p for p in self.blocks.parameters() if p.requires_grad]
            return ReversibleStack.apply(self.blocks, mask, hidden, hidden, *params)
        x1 = x2 = hidden
        for block in self.blocks:
            x1, x2 = block(x1, x2, mask)
        return x1, x2

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        with torch.no_grad():  # the embeddings are frozen: nothing to save for them
            hidden, mask = embed(
                self.model, {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            )
        _, top = self.run_stack(hidden, mask)
        return classify(self.model, top)


@register_finetune("meft")
class Meft(FinetuneAdapter):
    """Reversible adapters: the frozen blocks plus adapters as invertible two-stream couplings."""

    paper = "Make Pre-trained Model Reversible: From Parameter to Memory Efficient Fine-Tuning"
    arxiv = "2306.00477"
    Params = MeftParams

    def prepare(self, model, ctx):
        for p in model.parameters():
            p.requires_grad_(False)
        for module in backbone(model).encoder.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0  # recomputation must reproduce the forward exactly
        torch.manual_seed(ctx.seed)
        p = self.params
        blocks = build_blocks(model, p.bottleneck, p.lam, p.beta)
        for block in blocks:
            for name, param in block.named_parameters():
                param.requires_grad_(name.startswith(("adapter_f.", "adapter_g.")))
        for param in classifier_model(model).classifier.parameters():
            param.requires_grad_(True)
        return MeftModel(model, blocks, reversible=p.reversible)

    def logits(self, model, batch):
        return model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
