"""Canonical JSON and stable hashes: the identity of cells, suites and params."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_json(obj: Any) -> str:
    """Canonical JSON of ``obj``: sorted keys, no spaces, ``str()`` for anything JSON lacks."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(obj: Any, n: int = 16) -> str:
    """The first ``n`` hex digits of the sha256 of :func:`stable_json` of ``obj``."""
    return hashlib.sha256(stable_json(obj).encode()).hexdigest()[:n]


def text_hash(text: str, n: int = 16) -> str:
    """The first ``n`` hex digits of the sha256 of ``text`` (UTF-8): a sample row's ``prompt_hash``."""
    return hashlib.sha256(text.encode()).hexdigest()[:n]
