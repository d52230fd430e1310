"""A small generic registry: register by name with a decorator, look up with "did you mean",
and discover a package's plug-ins without a hand-kept import list.

Follows the shape of lm-evaluation-harness's ``lm_eval/api/registry.py`` (one generic
registry with a base-class check), written for this project.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name not in a registry; ``str()`` says which names are close and which exist."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        by_lower = {k.lower(): k for k in known}  # case-blind: "MATH-500" suggests "math500"
        close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=3, cutoff=0.6)
        self.suggestions = [by_lower[c] for c in close]
        super().__init__(name)

    def __reduce__(self):  # picklable: it crosses process boundaries (executors' workers)
        return (type(self), (self.kind, self.name, self.known))

    def __str__(self) -> str:
        hint = f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        return f"unknown {self.kind} {self.name!r}{hint} (known: {', '.join(sorted(self.known))})"


class Registry(Generic[T]):
    """Name → class mapping for one kind of plug-in.

    Args:
        kind: human name used in errors (``adapter``, ``task``...).
        base: every registered class must subclass it (or, with :meth:`add`, every registered
            item be an instance of it); a tuple of types allows any of them.
    """

    def __init__(self, kind: str, base: type | tuple[type, ...]):
        self.kind, self.base = kind, base
        self._base_name = " or ".join(b.__name__ for b in base) if isinstance(base, tuple) else base.__name__
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering ``cls`` under ``name``.

        Raises:
            TypeError: ``cls`` does not subclass the registry's base.
            ValueError: ``name`` is already taken by another class.
        """

        def decorate(cls: type[T]) -> type[T]:
            if not issubclass(cls, self.base):
                raise TypeError(f"{cls.__name__} must subclass {self._base_name} to be a {self.kind}")
            existing = self._items.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {existing.__name__}")
            cls.name = name  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return decorate

    def add(self, name: str, item: T) -> T:
        """Register an *instance* (e.g. a task spec) under ``name``.

        Raises:
            TypeError: ``item`` is not an instance of the registry's base.
            ValueError: ``name`` is already taken by another item.
        """
        if not isinstance(item, self.base):
            raise TypeError(f"{item!r} must be a {self._base_name} to be a {self.kind}")
        existing = self._items.get(name)
        if existing is not None and existing is not item:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item  # type: ignore[assignment]
        return item

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for test-only registrations)."""
        self._items.pop(name, None)

    def get(self, name: str) -> type[T]:  # (or the instance, for a registry filled with add)
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

    def items(self) -> list[tuple[str, T]]:
        """``(name, registered class or item)`` pairs, sorted by name."""
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


PLUGINS_ENV = "HARNESS_PLUGINS"
"""Comma-separated modules of the user's own plug-ins (adapters, tasks, cell kinds, executors),
imported with the built-in ones, e.g. ``HARNESS_PLUGINS=mylab.adapters``. Ray workers inherit it,
so plug-ins registered outside ``harness/`` run on a cluster too."""


def discover(package: str) -> list[str]:
    """Import every module of ``package`` (one level, ``_private`` modules skipped), so their
    registration decorators run: a new plug-in is a new file, never an edit of a list. The
    modules named in ``$HARNESS_PLUGINS`` are imported too.

    Returns:
        The imported module names, sorted.

    Raises:
        ImportError: a module named in ``$HARNESS_PLUGINS`` cannot be imported.
    """
    pkg = importlib.import_module(package)
    names = sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
    for name in names:
        importlib.import_module(name)
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        importlib.import_module(name)
    return names
