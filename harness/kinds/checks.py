"""Checks and the model × variant grid that several cell kinds share (nothing loads)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from harness.config.errors import SuiteError, validation_error
from harness.core.hashing import stable_json
from harness.core.refs import model_ref_problem
from harness.core.registry import UnknownNameError


def adapter_instance(name: str, params: dict, source: str, where: str, registry=None):
    """The adapter ``name`` of ``registry`` (default: the eval adapters,
    :data:`harness.adapters.ADAPTERS`) built with ``params``; a :class:`SuiteError` naming
    ``<source>: <where>.adapter`` or ``.params.<key>`` (with the closest valid names) otherwise."""
    if registry is None:
        from harness.adapters import ADAPTERS

        registry = ADAPTERS
    try:
        cls = registry.get(name)
    except UnknownNameError as exc:
        raise SuiteError(f"{source}: {where}.adapter: {exc}") from None
    try:
        return cls(params)
    except ValidationError as exc:
        raise validation_error(exc, cls.Params, source, f"{where}.params.", noun="parameter") from None


def check_models(models: list[str], source: str, where: str, problem_of=model_ref_problem) -> None:
    """Each model reference must be usable (nothing loads); ``SuiteError`` naming the index.

    ``problem_of(ref)`` says what is wrong with a reference, ``None`` when nothing is
    (default: :func:`harness.core.refs.model_ref_problem`; encoders pass their own)."""
    for i, ref in enumerate(models):
        problem = problem_of(ref)
        if problem:
            raise SuiteError(f"{source}: {where}[{i}]: {problem}")


def check_unique(keys: list[tuple[str, Any]], source: str, where: str, what: str) -> None:
    """``keys`` = ``(variant name, what identifies its technique)``; two equal → ``SuiteError``
    (the same technique twice would run the same cells under two names)."""
    seen: dict[str, str] = {}
    for i, (name, key) in enumerate(keys):
        key = stable_json(key)
        if key in seen:
            raise SuiteError(f"{source}: {where}[{i}]: same {what} as variant {seen[key]!r}")
        seen[key] = name


def model_grid(models: list[str], variants, ids: dict[str, str], resolve_id, registry):
    """``(model ref, variant, validated params)`` over models × variants, in that order; each
    model's canonical id is resolved once into ``ids`` (shared by every kind of cell)."""
    for ref in models:
        if ref not in ids:
            ids[ref] = resolve_id(ref)
        for variant in variants:
            yield ref, variant, registry.get(variant.adapter).Params(**variant.params).model_dump(mode="json")
