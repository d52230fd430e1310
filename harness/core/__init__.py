"""The small core every other part of the harness builds on; it imports nothing else from
``harness`` (a test checks this) and no heavy library (torch, transformers, lm-eval, pynvml).

* :mod:`~harness.core.hashing` — canonical JSON and the hashes of cells and suites.
* :mod:`~harness.core.refs` — model references, dtypes and device patterns, resolved without
  loading anything.
* :mod:`~harness.core.cell` — :class:`~harness.core.cell.Cell` (the unit of work and its
  documented identity), :class:`~harness.core.cell.CellOutcome` and the
  :class:`~harness.core.cell.CellKind` plug-in contract.
* :mod:`~harness.core.rows` — sample rows and the per-cell figures every kind shares.
* :mod:`~harness.core.registry` — name → plug-in registries with "did you mean" and discovery.
"""
