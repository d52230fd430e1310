"""The decode step compiled with ``torch.compile`` over a pre-allocated KV cache (issue 17, §1).

A :class:`CompiledStep` belongs to one variant's model. It owns ``transformers``' ``StaticCache``
buffers and one ``torch.compile`` of the model's forward (``dynamic=False``: fixed shapes, so on
CUDA the step can be replayed as a CUDA graph with ``mode="reduce-overhead"``; on CPU inductor
compiles with ``freezing`` so it may pre-pack the weights for its matmuls). A graph is specialised
on two sizes only, both bucketed so a sweep compiles a handful of graphs, not one per prompt:

* the batch dimension (a static batch's rows: the cell's ``batch_size``, and the smaller last
  batch, if any);
* the cache length, fixed per cell by :meth:`plan` (prompt + token cap, rounded up to a power of
  two, at least :data:`MIN_CACHE_LEN`); a request that needs more grows it (a new graph).

Prefill runs eagerly (prompt widths vary) and writes into the same static cache; only the
one-token decode step runs compiled. The rows of a batch share one write position (the cache
slot of step ``t`` is ``width + t`` for every row, left padding masked), exactly as ``generate``
with a static cache does, so a compiled batch is *static*: rows do not join or leave it
(:func:`harness.generation.generate` decides). Policies that replace the forward (early exit,
model switching, self-speculation) run eager; :attr:`compiled_steps` and :attr:`eager_steps`
say which way each step went.

Compilation is paid in the cell's warm-up (:meth:`precompile`, called with every shape the cell
will use), never in the measured window; :func:`graphs_compiled` counts ``torch._dynamo``'s
compiled graphs so a cell can report the recompiles its window paid (expected 0). Inductor's
on-disk caches live under ``$HARNESS_CACHE_DIR/inductor`` (:func:`use_disk_cache`) unless
``TORCHINDUCTOR_CACHE_DIR`` is set.

Sources: ``transformers``' static-cache + ``torch.compile`` recipe ("Static cache and
torch.compile", the LLM optimisation guide); PyTorch's ``torch.compile`` modes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

MIN_CACHE_LEN = 256
"""The smallest cache-length bucket (tokens)."""


def bucket(tokens: int) -> int:
    """The cache-length bucket for ``tokens`` positions: the next power of two, at least
    :data:`MIN_CACHE_LEN`."""
    size = MIN_CACHE_LEN
    while size < tokens:
        size *= 2
    return size


def graphs_compiled() -> int:
    """Graphs ``torch._dynamo`` has compiled in this process so far (its ``unique_graphs`` stat)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def use_disk_cache() -> str:
    """Point inductor's on-disk caches at ``$HARNESS_CACHE_DIR/inductor`` (default
    ``~/.cache/harness/inductor``, kept between runs, unlike inductor's default under ``/tmp``)
    unless the user chose a ``TORCHINDUCTOR_CACHE_DIR``; returns the folder."""
    from torch._inductor.runtime.runtime_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):  # inductor's own default
        root = Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


class CompiledStep:
    """One model's compiled decode step and its static caches.

    Attributes:
        cache_len: the cell's cache length (tokens), set by :meth:`plan`; ``0`` before.
        compiled_steps, eager_steps: decode steps run through the compiled graph / eagerly (a
            policy that replaces the forward) since the last :meth:`reset_counts`.
    """

    def __init__(self, model):
        self.model = model
        self.cache_len = 0
        self.compiled_steps = 0
        self.eager_steps = 0
        self._caches: dict[tuple[int, int], Any] = {}
        self._fn = None

    def plan(self, prompt_tokens: list[int], max_new_tokens: int) -> int:
        """Fix the cell's cache length from its prompts' token counts and token cap; returns it."""
        self.cache_len = max(self.cache_len, bucket(max(prompt_tokens, default=1) + max_new_tokens + 1))
        return self.cache_len

    def reset_counts(self) -> None:
        self.compiled_steps = self.eager_steps = 0

    @property
    def fn(self):
        """The compiled forward (built on first use)."""
        if self._fn is None:
            use_disk_cache()
            device = next(self.model.parameters()).device
            if device.type == "cuda":
                self._fn = torch.compile(self.model.forward, dynamic=False, mode="reduce-overhead")
            else:
                self._fn = torch.compile(self.model.forward, dynamic=False, options={"freezing": True})
        return self._fn

    def batch(self, rows: int, needed: int) -> "StaticBatch":
        """A :class:`StaticBatch` of ``rows`` rows over a reset static cache of the cell's length
        (grown to the bucket of ``needed`` positions when that is longer)."""
        from transformers import StaticCache

        length = max(self.cache_len, bucket(needed))
        key = (rows, length)
        cache = self._caches.get(key)
        if cache is None:
            cache = self._caches[key] = StaticCache(config=self.model.config, max_cache_len=length)
        else:
            cache.reset()
        return StaticBatch(cache, length)

    def precompile(self, tokenizer, batch_sizes: list[int]) -> None:
        """Compile the step at each batch size (at the planned cache length) by decoding two
        tokens of a one-token prompt per row: the warm-up's job, outside any measured window."""
        from harness.generation import GenerationSettings, generate

        token = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        for rows in sorted(set(b for b in batch_sizes if b > 0)):
            generate(self.model, tokenizer, [[token]] * rows, GenerationSettings(max_new_tokens=3), compiled=self)


class StaticBatch:
    """Masks and positions of a static batch over a :class:`~transformers.StaticCache` (the
    compiled path's counterpart of :class:`harness.kv_batch.LiveBatch`).

    Row ``i`` holds its prompt left-padded in slots ``[width - n_i, width)``; decode step ``t``
    writes slot ``width + t`` for every row. The 2-D attention mask always spans the whole cache
    (``[rows, cache_len]``: fixed shape, no recompiles), 1 where a row has a token.
    """

    def __init__(self, cache, length: int):
        self.cache = cache
        self.length = length
        self.mask: torch.Tensor | None = None  # [rows, length]
        self.next_slot = 0
        self.positions: torch.Tensor | None = None  # [rows, 1]: each row's next position id

    def prefill_kwargs(self, mask: torch.Tensor) -> dict[str, Any]:
        """Extra keyword arguments of the eager prefill of left-padded prompts with ``mask``
        (``[rows, width]``): the full-length mask and the cache positions ``0..width-1``."""
        rows, width = mask.shape
        if width >= self.length:
            raise ValueError(f"prompt of {width} tokens does not fit a static cache of {self.length}")
        full = torch.zeros((rows, self.length), dtype=mask.dtype, device=mask.device)
        full[:, :width] = mask
        self.mask = full
        self.next_slot = width
        self.positions = mask.sum(-1, keepdim=True)
        return {"attention_mask": full, "cache_position": torch.arange(width, device=mask.device)}

    def step_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the next decode step: mask, per-row position ids, cache position.

        Raises:
            ValueError: the cache is full (more steps than the planned length allows).
        """
        if self.next_slot >= self.length:
            raise ValueError(f"static cache of {self.length} positions is full")
        self.mask[:, self.next_slot] = 1
        kwargs = {
            "attention_mask": self.mask,
            "position_ids": self.positions,
            "cache_position": torch.tensor([self.next_slot], device=self.mask.device),
        }
        self.next_slot += 1
        self.positions = self.positions + 1
        return kwargs
