"""Shared fixtures. ``harness`` is imported first so its logging settings apply."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import harness  # noqa: F401  (quiet library loggers before torch/transformers load)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def data_dir(monkeypatch) -> Path:
    """``HARNESS_DATA_DIR`` pointed at ``../shared/data``, else at an already set
    ``HARNESS_DATA_DIR`` (a worktree elsewhere); skips when neither exists."""
    found = SHARED_DATA if SHARED_DATA.is_dir() else Path(os.environ.get("HARNESS_DATA_DIR", "") or SHARED_DATA)
    if not found.is_dir():
        pytest.skip(f"offline data not found at {SHARED_DATA}")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(found))
    return found


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct, fp32 on CPU (converted once, then cached)."""
    from harness import models

    try:
        models.embedded_gguf_path()
    except models.ModelError as exc:
        pytest.skip(str(exc))
    return models.load("embedded", dtype="fp32", device="cpu")
