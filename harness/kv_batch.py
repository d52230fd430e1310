"""A left-padded KV cache whose rows come and go (continuous batching).

The decode loop keeps every live sequence of a batch in one ``transformers`` ``DynamicCache``
of shape ``[rows, kv_heads, columns, head_dim]`` per layer, left-padded: row ``i``'s cached
tokens are its last ``lengths[i]`` columns (its prompt, then one token per step), the columns
before them are padding its attention mask hides. Rotary position embeddings are applied
before a key enters the cache (from each row's own ``position_ids``), so a row's cached keys
stay valid wherever its columns sit; moving them is only bookkeeping. Three operations:

* :meth:`LiveBatch.add` — rows that just ran their prefill join: both caches are left-padded to
  a common width and concatenated along the batch dimension;
* :meth:`LiveBatch.keep` — finished rows leave (``index_select`` on the batch dimension), and
  columns no remaining row uses are cut from the left, so the width is the longest live row's;
* :meth:`LiveBatch.step_inputs` — the attention mask and per-row positions of the next step.

Only caches made of plain ``DynamicLayer`` s are supported (:func:`supports`); sliding-window
or quantized layers keep static batches (the loop falls back).
"""

from __future__ import annotations

import torch


def supports(cache) -> bool:
    """Whether rows of ``cache`` can be joined and dropped (every layer a plain ``DynamicLayer``)."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # older transformers: legacy tuples, no layer objects
        return False
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer and layer.is_initialized for layer in layers)


def _pad_left(t: torch.Tensor, width: int) -> torch.Tensor:
    """``t`` (``[rows, heads, cols, dim]``) left-padded with zeros to ``width`` columns."""
    missing = width - t.shape[-2]
    if missing <= 0:
        return t
    pad = t.new_zeros((*t.shape[:-2], missing, t.shape[-1]))
    return torch.cat([pad, t], dim=-2)


class LiveBatch:
    """The live rows' cache, per-row lengths and attention mask.

    Attributes:
        cache: the ``DynamicCache`` (``None`` while the batch is empty).
        lengths: cached tokens per row (padding excluded) = each row's next position id.
        mask: ``[rows, columns]`` attention mask of the cached columns (1 = a real token).
    """

    def __init__(self):
        self.cache = None
        self.lengths: list[int] = []
        self.mask: torch.Tensor | None = None

    def add(self, cache, lengths: list[int], mask: torch.Tensor) -> None:
        """Append rows that ran their prefill: their ``cache`` (``len(lengths)`` rows), tokens per
        row and ``[rows, columns]`` mask (left-padded like this batch's)."""
        if self.cache is None:
            self.cache, self.lengths, self.mask = cache, list(lengths), mask
            return
        width = max(self.mask.shape[-1], mask.shape[-1])
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)], dim=0)
            mine.values = torch.cat([_pad_left(mine.values, width), _pad_left(theirs.values, width)], dim=0)
        masks = [torch.nn.functional.pad(m, (width - m.shape[-1], 0)) for m in (self.mask, mask)]
        self.mask = torch.cat(masks, dim=0)
        self.lengths += list(lengths)

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (positions in this batch, in order); cut columns no kept row uses."""
        if not rows:
            self.cache, self.lengths, self.mask = None, [], None
            return
        if len(rows) < len(self.lengths):
            index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
            self.cache.batch_select_indices(index)
            self.mask = self.mask.index_select(0, index)
            self.lengths = [self.lengths[i] for i in rows]
        width = max(self.lengths)
        if width < self.mask.shape[-1]:
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., -width:, :]
                layer.values = layer.values[..., -width:, :]
            self.mask = self.mask[:, -width:]

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(attention_mask, position_ids)`` of a one-token step of every row: the mask grown by
        one column of ones (``[rows, columns + 1]``), positions ``[rows, 1]`` = ``lengths``. Call
        :meth:`stepped` after the forward."""
        mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=-1)
        positions = torch.tensor(self.lengths, dtype=torch.long, device=self.mask.device).unsqueeze(-1)
        return mask, positions

    def stepped(self, mask: torch.Tensor, cache) -> None:
        """Record a step: the mask :meth:`step_inputs` returned and the forward's cache."""
        self.mask, self.cache = mask, cache
        self.lengths = [n + 1 for n in self.lengths]
