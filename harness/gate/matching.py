"""Load the two sides of a gate through the results reader and match their cells and samples.

Cells match on :data:`MATCH_KEY` (canonical model id, dtype, batch size, task, task version,
variant, params hash): neither the run, nor the limit, nor the host. Cells with the same key and
different ``repeat`` values are repeats of one cell. Samples match on :data:`SAMPLE_KEY`
``(doc_id, sample)`` within a matched cell (so on ``(task, doc_id, sample)``): the k-th sample of a
doc pairs with the other side's k-th sample of it; rows without a ``sample`` (written before
schema 1.4) are sample 0.

Accuracy, length and determinism use each side's lowest ``status == "ok"`` repeat; costs use every
ok repeat. When a side holds several runs with the same (key, repeat), the latest run (run ids
sort by time) wins and a note says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import SchemaVersionError, read_cells, read_run, read_samples
from harness.results.reader import run_dirs

__all__ = ["MATCH_KEY", "SAMPLE_KEY", "GateInputError", "Side", "CellPair", "Matching", "load_side", "match"]

MATCH_KEY: tuple[str, ...] = ("model", "dtype", "batch_size", "task", "task_version", "variant", "params_hash")
SAMPLE_KEY: tuple[str, ...] = ("doc_id", "sample")


class GateInputError(ValueError):
    """Input the gate cannot use (exit code 2); ``str()`` is one line saying why."""


def _scalar(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):  # numpy scalar
        return v.item()
    return v


@dataclass
class Side:
    """One side of the gate: its cells (one row per key and repeat) and samples."""

    label: str
    path: Path
    cells: pd.DataFrame
    samples: pd.DataFrame
    runs: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def run_ids(self) -> list[str]:
        return sorted({str(r) for r in self.cells["run_id"].dropna()})

    def suite_config(self) -> dict[str, Any] | None:
        """The ``suite_config`` stored in the latest run's ``run.json`` (None when absent)."""
        for meta in sorted(self.runs, key=lambda m: str(m.get("run_id", "")), reverse=True):
            cfg = meta.get("suite_config")
            if isinstance(cfg, dict):
                return cfg
        return None


def load_side(path: Path | str, label: str) -> Side:
    """Read a run directory (or a results root, or a folder of runs) as one side.

    Raises:
        GateInputError: missing path, no run or no cell under it, a results file of another
            schema MAJOR version, or no ``doc_id`` in the samples.
    """
    path = Path(path)
    if not path.exists():
        raise GateInputError(f"{label} run not found: {path}")
    dirs = run_dirs(path)
    if not dirs:
        raise GateInputError(f"{label}: no run directory under {path} (expected run.json and cells/)")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cells = read_cells(path)
            samples = read_samples(path)
        except SchemaVersionError as exc:
            raise GateInputError(f"{label}: schema mismatch: {exc}") from None
    notes += [f"{label}: {w.message}" for w in caught]
    if cells.empty:
        raise GateInputError(f"{label}: no readable cells under {path}")
    runs = []
    for d in dirs:
        try:
            meta = read_run(d)
        except Exception as exc:  # noqa: BLE001 - run.json is optional for matching
            notes.append(f"{label}: no usable run.json in {d}: {exc}")
            continue
        meta.setdefault("run_id", d.name)
        runs.append(meta)

    cells = cells.copy()
    cells["_key"] = [tuple(_scalar(v) for v in row) for row in cells[list(MATCH_KEY)].itertuples(index=False)]
    cells["_repeat"] = [(_scalar(r) if _scalar(r) is not None else 0) for r in cells["repeat"]]
    cells = cells.sort_values("run_id", kind="stable")
    dup = cells.duplicated(["_key", "_repeat"], keep="last")
    if dup.any():
        dropped = cells[dup]
        notes.append(
            f"{label}: {len(dropped)} cell(s) found in more than one run; the latest run's kept "
            f"(dropped from run(s) {', '.join(sorted(set(map(str, dropped['run_id']))))})"
        )
        cells = cells[~dup]
    return Side(label, path, cells.reset_index(drop=True), samples, runs, notes)


def key_dict(key: tuple) -> dict[str, Any]:
    return dict(zip(MATCH_KEY, key))


@dataclass
class CellPair:
    """A matched cell: every repeat on each side, and the samples paired by ``(doc_id, sample)``."""

    key: tuple
    base_cells: pd.DataFrame  # all repeats (any status)
    cand_cells: pd.DataFrame
    paired: pd.DataFrame | None  # one row per (doc_id, sample) in both; columns <col>_b / <col>_c
    n_base_samples: int = 0
    n_cand_samples: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def info(self) -> dict[str, Any]:
        return key_dict(self.key)

    def ok(self, side: str) -> pd.DataFrame:
        df = self.base_cells if side == "b" else self.cand_cells
        return df[df["status"] == "ok"]


@dataclass
class Matching:
    """All matched cells plus the keys found on one side only."""

    pairs: list[CellPair]
    only_baseline: list[tuple]
    only_candidate: list[tuple]


_SAMPLE_COLS = ("doc_id", "sample", "correct", "output_tokens", "finish_reason", "output_text")


def _cell_samples(side: Side, row: pd.Series) -> pd.DataFrame:
    """The cell's sample rows, with ``sample`` 0 where a row has none (files before schema 1.4)."""
    s = side.samples
    if not s.empty:
        s = s[(s["run_id"] == row["run_id"]) & (s["cell_hash"] == row["cell_hash"])]
    if "sample" not in s.columns:
        return s.assign(sample=pd.Series(0, index=s.index, dtype="int64"))
    return s.assign(sample=s["sample"].fillna(0).astype("int64"))


def _first_ok(cells: pd.DataFrame) -> pd.Series | None:
    ok = cells[cells["status"] == "ok"]
    if ok.empty:
        return None
    return ok.sort_values("_repeat", kind="stable").iloc[0]


def match(baseline: Side, candidate: Side) -> Matching:
    """Match the two sides' cells by key and their samples by ``(doc_id, sample)``.

    Raises:
        GateInputError: when no cell key is on both sides.
    """
    bkeys = list(dict.fromkeys(baseline.cells["_key"]))
    ckeys = list(dict.fromkeys(candidate.cells["_key"]))
    cset, bset = set(ckeys), set(bkeys)
    common = sorted((k for k in bkeys if k in cset), key=_order)
    if not common:
        raise GateInputError(
            f"no overlapping cells: baseline {baseline.path} has {len(bkeys)} cell(s) "
            f"({_describe(bkeys)}), candidate {candidate.path} has {len(ckeys)} ({_describe(ckeys)}); "
            f"cells match on {', '.join(MATCH_KEY)}"
        )
    pairs = []
    for key in common:
        bc = baseline.cells[baseline.cells["_key"] == key].sort_values("_repeat", kind="stable")
        cc = candidate.cells[candidate.cells["_key"] == key].sort_values("_repeat", kind="stable")
        pair = CellPair(key, bc, cc, None)
        brow, crow = _first_ok(bc), _first_ok(cc)
        if brow is not None and crow is not None:
            bs = _dedupe(_cell_samples(baseline, brow), "baseline", pair)
            cs = _dedupe(_cell_samples(candidate, crow), "candidate", pair)
            pair.n_base_samples, pair.n_cand_samples = len(bs), len(cs)
            cols = [c for c in _SAMPLE_COLS if c in bs.columns and c in cs.columns]
            pair.paired = bs[cols].merge(cs[cols], on=list(SAMPLE_KEY), suffixes=("_b", "_c"), how="inner")
            pair.paired = pair.paired.sort_values(list(SAMPLE_KEY), kind="stable").reset_index(drop=True)
        pairs.append(pair)
    return Matching(
        pairs,
        only_baseline=sorted((k for k in bkeys if k not in cset), key=_order),
        only_candidate=sorted((k for k in ckeys if k not in bset), key=_order),
    )


def _order(key: tuple) -> tuple:
    """Report order: task, model, dtype, batch size, variant (``baseline`` first)."""
    d = key_dict(key)
    return (str(d["task"]), str(d["model"]), str(d["dtype"]), d["batch_size"] or 0,
            d["variant"] != "baseline", str(d["variant"]))


def _dedupe(samples: pd.DataFrame, label: str, pair: CellPair) -> pd.DataFrame:
    if samples.empty:
        return samples
    dup = samples.duplicated(list(SAMPLE_KEY), keep="first")
    if dup.any():
        pair.notes.append(f"{label}: {int(dup.sum())} duplicate (doc_id, sample) row(s) ignored")
        samples = samples[~dup]
    return samples


def _describe(keys: list[tuple], limit: int = 3) -> str:
    shown = ["/".join(str(v) for v in (k[3], k[5], k[1], f"bs{k[2]}")) for k in keys[:limit]]
    return ", ".join(shown) + (f", … {len(keys) - limit} more" if len(keys) > limit else "")
