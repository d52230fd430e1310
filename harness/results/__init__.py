"""Results: versioned Arrow schema, atomic resumable writer, one reader, statistics, Pareto front.

This package imports no torch and no pynvml (a test asserts it), so the dashboard, the gate and CI
can read results on any machine.
"""

from harness.results.pareto import COST_AXES, CostAxis, pareto_front
from harness.results.reader import read_cells, read_run, read_runs, read_samples
from harness.results.schema import (
    CELL_SCHEMA,
    SAMPLE_SCHEMA,
    SCHEMA_VERSION,
    SchemaVersionError,
    cell_table,
    sample_table,
)
from harness.core.stats import (
    accuracy_with_ci,
    bootstrap_mean_ci,
    percentile,
    wilson_interval,
)
from harness.results.store import (
    CellExistsError,
    ResultsReadWarning,
    RunStore,
    find_run,
    new_run_id,
)
from harness.results.summary import summary_table

__all__ = [
    "CELL_SCHEMA",
    "COST_AXES",
    "CellExistsError",
    "CostAxis",
    "ResultsReadWarning",
    "RunStore",
    "SAMPLE_SCHEMA",
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "accuracy_with_ci",
    "bootstrap_mean_ci",
    "cell_table",
    "find_run",
    "new_run_id",
    "pareto_front",
    "percentile",
    "read_cells",
    "read_run",
    "read_runs",
    "read_samples",
    "sample_table",
    "summary_table",
    "wilson_interval",
]
