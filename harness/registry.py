"""A small generic registry: register by name with a decorator, look up with "did you mean".

Follows the shape of lm-evaluation-harness's ``lm_eval/api/registry.py`` (one generic
registry with a base-class check), written for this project.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name not in a registry; ``str()`` says which names are close and which exist."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        self.suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        super().__init__(name)

    def __str__(self) -> str:
        hint = f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        return f"unknown {self.kind} {self.name!r}{hint} (known: {', '.join(sorted(self.known))})"


class Registry(Generic[T]):
    """Name → class mapping for one kind of plug-in.

    Args:
        kind: human name used in errors (``adapter``, ``task``...).
        base: every registered class must subclass it.
    """

    def __init__(self, kind: str, base: type):
        self.kind, self.base = kind, base
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering ``cls`` under ``name``.

        Raises:
            TypeError: ``cls`` does not subclass the registry's base.
            ValueError: ``name`` is already taken by another class.
        """

        def decorate(cls: type[T]) -> type[T]:
            if not issubclass(cls, self.base):
                raise TypeError(f"{cls.__name__} must subclass {self.base.__name__} to be a {self.kind}")
            existing = self._items.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {existing.__name__}")
            cls.name = name  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for test-only registrations)."""
        self._items.pop(name, None)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``.

        Raises:
            UnknownNameError: with close matches and the known names.
        """
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._items)) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
