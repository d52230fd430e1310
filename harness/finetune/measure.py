"""What a fine-tuning technique costs, measured: trainable parameters, saved activations,
adapter size and switching time.

* ``saved_activation_bytes``: bytes of the distinct tensor storages autograd saves for the
  backward pass during one training forward, counted with
  :func:`torch.autograd.graph.saved_tensors_hooks`. Storages of parameters and buffers are
  left out (they exist whether or not one trains), so this is activation memory: what a
  frozen prefix run under ``no_grad`` or a reversible stack saves less of. A storage saved by
  several operations counts once.
* ``adapter_bytes``: size of the technique's trained state (what must be stored per task),
  serialized with safetensors.
* ``switch_time_s``: time to deserialize that state and copy it into the live model, i.e. to
  switch the model to this task's adaptation.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["SavedTensorMeter", "count_params", "serialize_state", "time_switch"]


def count_params(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of ``model`` (shared tensors counted once)."""
    trainable = total = 0
    seen: set[int] = set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def _storage_key(t) -> tuple[Any, int]:
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), int(storage.nbytes())
    except (RuntimeError, NotImplementedError):  # sparse and other storage-less tensors
        return ("id", id(t)), int(t.numel() * t.element_size())


class SavedTensorMeter:
    """Counts the bytes saved for backward inside :meth:`measure` blocks.

    Args:
        model: its parameters' and buffers' storages are not counted (read at construction:
            build the meter after the technique has added its parameters).

    Attributes:
        last_bytes: bytes saved in the most recent block.
        peak_bytes: the largest ``last_bytes`` so far.
    """

    def __init__(self, model) -> None:
        self._excluded = {_storage_key(p)[0] for p in model.parameters()}
        self._excluded |= {_storage_key(b)[0] for b in model.buffers()}
        self.last_bytes = 0
        self.peak_bytes = 0

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Count what autograd saves for backward while the block runs."""
        import torch

        seen: dict[Any, int] = {}

        def pack(t):
            key, nbytes = _storage_key(t)
            if key not in self._excluded:
                seen.setdefault(key, nbytes)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield
        self.last_bytes = sum(seen.values())
        self.peak_bytes = max(self.peak_bytes, self.last_bytes)


def serialize_state(state: dict[str, Any]) -> bytes:
    """safetensors bytes of a ``name -> tensor`` dict (tensors detached, contiguous, on CPU)."""
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu().clone() for k, v in state.items()})


def time_switch(blob: bytes, load: Callable[[dict[str, Any]], None]) -> float:
    """Seconds to deserialize ``blob`` and hand the tensors to ``load`` (which copies them in)."""
    from safetensors.torch import load as load_bytes

    start = time.perf_counter()
    load(load_bytes(blob))
    return time.perf_counter() - start
