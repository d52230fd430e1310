"""The unit of work (:class:`Cell`), what running one returns (:class:`CellOutcome`), and the
plug-in contract of a *cell kind* (:class:`CellKind`).

A cell kind owns one section of a suite (its pydantic ``Section`` model), turns it into cells
(``expand``), checks what the cells need before anything loads (``check_inputs``), loads the
base a group of its cells shares (``load_base``) and runs one cell inside a telemetry window
(``run``). Executors, resume, the results store and the summary are shared by every kind.
Kinds register in :data:`harness.kinds.KINDS`; a new kind is a new package under
``harness/kinds/`` (or, for tests, a class registered from the test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from harness.core.hashing import stable_hash, stable_json

CELL_FORMAT = 1
"""Bump when the meaning of a cell changes: every cell hash changes and nothing resumes."""


@dataclass(frozen=True)
class Cell:
    """One unit of work: a variant of a model on a task (one repeat).

    Identity (:attr:`identity`, hashed into :attr:`cell_hash`) is what determines the result:

    * every kind: the cell format, the canonical model id (never a path), dtype, adapter and
      its full params (defaults filled), task and task version, limit, seed and repeat;
    * plus what the kind adds (``identity_extra``, built by the kind's ``expand``): evaluation
      cells their generation settings and batch size; other kinds their ``kind`` name and their
      resolved settings (``train`` for fine-tuning, ``agent`` for τ² cells).

    Left out on purpose: the suite's name, the device, warm-up requests and timeouts: they do
    not change what a cell measures, so changing them resumes the same cells.

    Attributes:
        settings: the kind's resolved settings the runner reads (not hashed as such; the kind
            puts what matters into ``identity_extra``).
    """

    suite: str
    model_ref: str
    model_id: str
    variant: Any  # the suite's variant model: .name, .adapter, .dtype (+ the kind's own fields)
    params: dict[str, Any]
    task: str
    task_version: str
    limit: int | None
    batch_size: int
    max_new_tokens: int
    seed: int
    repeat: int
    device: str
    warmup: int = 0
    kind: str = "eval"
    settings: dict[str, Any] | None = None
    identity_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> dict[str, Any]:
        """The JSON-ready mapping :attr:`cell_hash` hashes (see the class docstring)."""
        return {
            "format": CELL_FORMAT,
            "model": self.model_id,
            "dtype": self.variant.dtype,
            "adapter": self.variant.adapter,
            "params": self.params,
            "task": self.task,
            "task_version": self.task_version,
            "limit": self.limit,
            "seed": self.seed,
            "repeat": self.repeat,
            **self.identity_extra,
        }

    @property
    def cell_hash(self) -> str:
        return stable_hash(self.identity)

    @property
    def params_hash(self) -> str:
        """Hash of the technique alone (adapter + params, and an eval variant's ``compile`` setting when
        the suite sets it): one variant across tasks and models."""
        compiled = getattr(self.variant, "compile", None)  # eval variants: set only when the suite says so
        return stable_hash({"adapter": self.variant.adapter, "params": self.params,
                            **({} if compiled is None else {"compile": compiled})})

    @property
    def group_key(self) -> tuple[str, str, str]:
        """Cells with the same key share one loaded base: ``(kind, model ref, dtype)``."""
        return (self.kind, self.model_ref, self.variant.dtype)

    @property
    def label(self) -> str:
        """A short human label: ``variant · task`` (``· rN`` for repeats after the first)."""
        return f"{self.variant.name} · {self.task}" + (f" · r{self.repeat}" if self.repeat else "")

    def identity_columns(self) -> dict[str, Any]:
        """The identity columns of this cell's result row (schema names)."""
        return {
            "cell_hash": self.cell_hash,
            "params_hash": self.params_hash,
            "suite": self.suite,
            "model": self.model_id,
            "dtype": self.variant.dtype,
            "batch_size": self.batch_size,
            "variant": self.variant.name,
            "adapter": self.variant.adapter,
            "params_json": stable_json(self.params),
            "task": self.task,
            "task_version": self.task_version,
            "limit": self.limit,
            "repeat": self.repeat,
            "seed": self.seed,
            "cell_kind": self.kind,
        }


@dataclass
class CellOutcome:
    """What running a cell returns (schema column names); the driver writes it, the kind never does.

    Attributes:
        cell_row: the cell's figures (identity, status and provenance columns are added by the
            executor).
        sample_rows: one row per sample.
        telemetry_samples: the window's probe readings (:mod:`harness.telemetry.series`).
        files: files to keep in the run directory, ``relative path → bytes`` (e.g. a calibration
            a resumed run reuses, τ²'s raw results); written by the store, atomically.
    """

    cell_row: dict[str, Any]
    sample_rows: list[dict[str, Any]]
    telemetry_samples: list = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


Progress = Callable[[float, int], None]
"""``on_progress(done, total)``: units done of the cell (samples, steps, simulations); ``done``
may be fractional (a batch part-way through its decode)."""


class CellKind:
    """One kind of cell. Subclass, set the class attributes, register in
    :data:`harness.kinds.KINDS` (``@KINDS.register("name")``).

    Class attributes:
        name: registry name; the ``kind`` of its cells (set by the decorator).
        section: the suite key of its section (``None``: the suite's top-level ``models``,
            ``tasks`` and ``variants``, the evaluation kind only).
        Section: the pydantic model that validates the section (``extra="forbid"``).
        order: where its cells come in a run (lower first; ties by name): evaluation 0,
            fine-tuning 10, agents 20.
    """

    name: ClassVar[str] = ""
    section: ClassVar[str | None] = None
    Section: ClassVar[type | None] = None
    order: ClassVar[int] = 100

    def variants(self, section) -> list:
        """The section's variants (names must be unique across a suite)."""
        return list(getattr(section, "variants", []))

    def describe(self, suite, section) -> str:
        """One line saying what the section runs (``harness validate``)."""
        return f"{self.name}: {len(self.variants(section))} variant(s)"

    def check(self, suite, section, source: str) -> None:
        """Check names, params and tasks beyond the ``Section`` model, loading nothing.

        Raises:
            SuiteError: one line naming ``source`` and the key.
        """

    def expand(self, suite, section, limit: int | None, model_ids: dict[str, str]) -> list[Cell]:
        """The section's cells in run order; ``model_ids`` caches reference → canonical id."""
        raise NotImplementedError

    def check_inputs(self, cells: list[Cell]) -> None:
        """Before any model loads: fail on data or tools the cells need and cannot have
        (``DataError`` or ``SuiteError`` with a one-line message)."""

    def check_device(self, cells: list[Cell], device: str) -> None:
        """Before any model loads, once the run's device is resolved (``cpu`` / ``cuda[:N]``):
        fail on cells that cannot run there (``SuiteError``, one line). Default: nothing."""

    def load_base(self, ref: str, dtype: str, device: str):
        """The base shared by a group of cells: an object with ``model`` (torch module),
        ``canonical_id`` and ``load_time_s`` (``chat_template_hash`` optional)."""
        raise NotImplementedError

    def run(self, cell: Cell, base, telemetry, on_progress: Progress | None = None,
            files: dict[str, bytes] | None = None) -> CellOutcome:
        """Run ``cell`` on the loaded ``base`` inside ``telemetry`` windows.

        Args:
            files: files the run directory already holds that this kind asked to reuse
                (see :meth:`reused_files`), ``relative path → bytes``.
        """
        raise NotImplementedError

    def data_files(self, cells: list[Cell]) -> list[str]:
        """Data files the cells read, relative to ``HARNESS_DATA_DIR``: an executor whose workers
        may run where that folder does not exist ships them from the driver."""
        return []

    def reused_files(self, cell: Cell) -> list[str]:
        """Run-directory files (relative paths) the driver hands to :meth:`run` if they exist."""
        return []

    def regrade(self, row: dict[str, Any]) -> tuple[float, str] | None:
        """Grade a stored sample row again from its stored text (``harness grade --run``):
        ``(correct, reason)``, or ``None`` for a row without a per-sample grade.

        Raises:
            NotImplementedError: this kind's grades cannot be recomputed from a stored row.
        """
        raise NotImplementedError

    def compression_ratio(self, base_bytes: int | None, cell_row: dict[str, Any]) -> float | None:
        """``base param_bytes / variant param_bytes`` where the kind's variants compress a base."""
        return None


from harness.core.registry import Registry  # noqa: E402  (below CellKind, its base class)

KINDS: Registry[CellKind] = Registry("cell kind", CellKind)
"""Cell kinds by name; :mod:`harness.kinds` discovers the built-in ones."""
