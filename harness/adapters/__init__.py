"""Technique adapters. Importing this package registers every built-in adapter.

Each module holds one technique (paper cited in its docstring); ``base`` holds the contract.
"""

from harness.adapters import (  # noqa: F401  (registration)
    baseline,
    depth_subnet,
    early_exit,
    entropy_switch,
    int8,
    speculative,
    think_budget,
)
from harness.adapters.base import ADAPTERS, Adapter, AdapterParams, register_adapter

__all__ = ["ADAPTERS", "Adapter", "AdapterParams", "register_adapter"]
