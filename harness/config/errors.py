"""Suite errors: one line naming the file and the key, with the closest valid names.

Every validation error of a suite goes through :func:`validation_error`, so an unknown field
anywhere says which fields are close (``defaults.limt: unknown field; did you mean 'limit'?``).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


class SuiteError(ValueError):
    """A suite that cannot be used; ``str()`` is one line naming the file and the key."""


def loc_text(loc: tuple) -> str:
    """``("variants", 1, "params")`` → ``variants[1].params``; ``()`` → ``(top level)``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def did_you_mean(name: str, known: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``known`` (empty when none is close)."""
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_at(annotation: Any, loc: tuple) -> type[BaseModel] | None:
    """The pydantic model found by following ``loc`` through nested annotations (or ``None``)."""
    for part in loc:
        annotation = _unwrap(annotation, index=isinstance(part, int))
        if isinstance(part, int):
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
            annotation = annotation.model_fields[part].annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return None
    annotation = _unwrap(annotation, index=False)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation: Any, index: bool) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(models[0], index) if models else annotation
    if index and origin in (list, tuple):
        return typing.get_args(annotation)[0]
    return annotation


def validation_error(exc: ValidationError, model: type[BaseModel], source: str, prefix: str = "",
                     noun: str = "field") -> SuiteError:
    """The first error of ``exc`` (raised validating ``model``) as one :class:`SuiteError` line
    ``<source>: <prefix><key>: <message>``.

    Args:
        prefix: where ``model`` sits in the suite, e.g. ``"finetune."`` or ``"variants[1].params."``.
        noun: what an unknown key is called: ``field``, or ``parameter`` for adapter params; the
            message names the closest valid keys.
    """
    errors = exc.errors()
    # an unknown key first: it is usually the misspelling of a key reported missing
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "device":
        message = f"unknown device {err['input']!r}; use auto, cpu, cuda or cuda:N"
    if err["type"] == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        known = list(parent.model_fields) if parent is not None else []
        message = f"unknown {noun}{did_you_mean(loc[-1], known)}"
    key = (prefix + loc_text(loc)) if loc else (prefix.rstrip(".") or "(top level)")
    return SuiteError(f"{source}: {key}: {message}")
