"""Technique adapters. Importing this package registers every built-in adapter.

Each module holds one technique (paper cited in its docstring) and registers it with
``@register_adapter``; ``base`` holds the contract. A new adapter is a new file here:
modules are discovered, not listed.
"""

from harness.adapters.base import ADAPTERS, Adapter, AdapterParams, register_adapter
from harness.core.registry import discover

discover(__name__)

__all__ = ["ADAPTERS", "Adapter", "AdapterParams", "register_adapter"]
