"""The one place that owns the results columns and their version.

Every cell row (one per model x variant x task x repeat) and every sample row (one per evaluated
request) stored under ``results/`` follows the Arrow schemas defined here. Column names carry their
SI unit (``*_s``, ``*_j``, ``*_w``, ``*_bytes``); see ``docs/CONTRACTS.md`` and DESIGN section 4.

Versioning (``MAJOR.MINOR``, stored in each Parquet file's key-value metadata under
``harness_schema_version``):

- adding a column bumps MINOR; files written with an older MINOR read with that column as null;
- removing, renaming or retyping a column bumps MAJOR; readers refuse a different MAJOR with
  :class:`SchemaVersionError`.

Adapter counters are open-ended: any key named ``counter_<name>`` is accepted and stored as a
``float64`` column appended after the fixed ones; so is a proving cell's ``pass_at_<k>`` for each
``k`` of its suite's ``report_k`` (``pass_at_1`` is a fixed column). Any other unknown key is
refused with a ``ValueError`` so that a typo never silently creates a column.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import pyarrow as pa

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_KEY",
    "COUNTER_PREFIX",
    "CELL_SCHEMA",
    "SAMPLE_SCHEMA",
    "TELEMETRY_SERIES_SCHEMA",
    "CELL_COLUMNS",
    "SAMPLE_COLUMNS",
    "CELL_STATUSES",
    "FINISH_REASONS",
    "SchemaVersionError",
    "parse_version",
    "is_counter_column",
    "is_pass_at_k_column",
    "CHECK_STATUSES",
    "with_counters",
    "cell_table",
    "sample_table",
    "telemetry_series_table",
]

SCHEMA_VERSION = "1.4"  # 1.1: energy_per_sample_j; 1.2: warm-up, adapter preparation, training cells, NLU metrics; 1.3: agent cells (τ²); 1.4: per-cell provenance_json, sample, window checks (flag_energy_disagree, flag_memory_order, other_*, flag_interference), itl_p*_s; correct_truncated, τ² db_match / db_mismatch_count; proving cells
"""Current results schema version, ``MAJOR.MINOR``."""

SCHEMA_VERSION_KEY = "harness_schema_version"
"""Parquet key-value metadata key holding the schema version of a file."""

COUNTER_PREFIX = "counter_"
_COUNTER_RE = re.compile(r"^counter_[A-Za-z0-9_]+$")
_PASS_AT_K_RE = re.compile(r"^pass_at_[1-9][0-9]*$")

CELL_STATUSES = ("ok", "error")
FINISH_REASONS = ("stop", "length", "error")
CHECK_STATUSES = ("proved", "failed", "rejected", "timeout", "error")  # harness.provers.verdict

_STR = pa.string()
_F64 = pa.float64()
_I64 = pa.int64()
_BOOL = pa.bool_()


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


CELL_SCHEMA = pa.schema(
    [
        # identity
        _f("run_id", _STR, nullable=False),
        _f("cell_hash", _STR, nullable=False),
        _f("params_hash", _STR),
        _f("hardware_id", _STR),  # the hardware class the cell ran on (GPU model, driver, CPU model)
        _f("provenance_json", _STR),  # the machine the cell ran on (telemetry.collect_provenance), JSON
        _f("suite", _STR),
        _f("model", _STR),
        _f("dtype", _STR),
        _f("device", _STR),
        _f("batch_size", _I64),
        _f("variant", _STR),
        _f("adapter", _STR),
        _f("params_json", _STR),
        _f("task", _STR),
        _f("task_version", _STR),
        _f("limit", _I64),
        _f("repeat", _I64),
        _f("seed", _I64),
        _f("status", _STR, nullable=False),  # ok | error
        _f("error", _STR),
        _f("started_at", _STR),  # ISO-8601 UTC
        _f("finished_at", _STR),  # ISO-8601 UTC
        # accuracy
        _f("n", _I64),
        _f("accuracy", _F64),
        _f("accuracy_ci95_low", _F64),
        _f("accuracy_ci95_high", _F64),
        _f("n_correct", _F64),  # sum of per-sample correctness (a count for bool grades)
        # tokens / latency, computed from the samples
        _f("output_tokens_mean", _F64),
        _f("output_tokens_total", _I64),
        _f("input_tokens_mean", _F64),
        _f("truncation_rate", _F64),
        _f("correct_truncated", _I64),  # (1.4) samples graded correct that stopped at the token cap
        _f("latency_p50_s", _F64),
        _f("latency_p90_s", _F64),
        _f("latency_p99_s", _F64),
        _f("ttft_p50_s", _F64),
        _f("tpot_p50_s", _F64),
        # 1.4: inter-token latency percentiles over every sample's itl_s pooled (a step emitting k
        # tokens at once gives each the step's gap / k)
        _f("itl_p50_s", _F64),
        _f("itl_p90_s", _F64),
        _f("itl_p99_s", _F64),
        _f("throughput_tok_per_s", _F64),
        _f("generation_time_s", _F64),
        _f("tokens_per_correct", _F64),
        # model size
        _f("param_bytes", _I64),
        _f("compression_ratio", _F64),
        # telemetry (keys of WindowResult.as_columns())
        _f("duration_s", _F64),
        _f("energy_j", _F64),
        _f("energy_source", _STR),
        _f("energy_estimated", _BOOL),
        _f("energy_attributed", _BOOL),
        _f("energy_counter_j", _F64),
        _f("energy_integral_j", _F64),
        _f("energy_assumed_power_w", _F64),
        _f("avg_power_w", _F64),
        _f("idle_power_w", _F64),
        _f("idle_power_source", _STR),
        _f("co2_kg", _F64),
        _f("co2_source", _STR),
        _f("peak_rss_bytes", _I64),
        _f("peak_rss_source", _STR),
        _f("peak_allocated_bytes", _I64),
        _f("peak_reserved_bytes", _I64),
        _f("peak_device_used_bytes", _I64),
        _f("peak_process_device_used_bytes", _I64),
        _f("gpu_util_mean", _F64),
        _f("sampler_period_s", _F64),
        _f("sampler_achieved_period_s", _F64),
        _f("sampler_missed_ticks", _I64),
        _f("flag_short_window", _BOOL),
        _f("flag_counter_reset", _BOOL),
        # 1.4: checks of the window (harness/telemetry: gpu_energy, gpu_memory, interference)
        _f("flag_energy_disagree", _BOOL),  # NVML counter vs power integral > 5 %, or a 0 J counter
        _f("flag_memory_order", _BOOL),  # allocated ≤ reserved ≤ NVML process ≤ NVML device broken
        _f("other_cpu_share", _F64),  # machine CPU capacity used by other processes, 0..1
        _f("other_gpu_processes", _I64),  # NVML processes other than ours on the used GPU
        _f("other_gpu_memory_bytes", _I64),  # their peak device memory
        _f("other_gpu_util_max", _F64),  # their largest SM utilisation, 0..1
        _f("flag_interference", _BOOL),  # other load above the documented thresholds: costs not comparable
        # derived energy
        _f("energy_per_token_j", _F64),
        _f("energy_per_sample_j", _F64),
        _f("energy_per_correct_j", _F64),  # null when nothing is correct
        # warm-up before the measured window (1.2): excluded from every figure above
        _f("warmup_requests", _I64),
        _f("warmup_time_s", _F64),  # the cold start: wall time of the warm-up requests (and compilation)
        # compiled decode step (harness/compiled_step.py; the variant's `compile: true`)
        _f("compile", _BOOL),
        _f("compiled_steps_share", _F64),  # decode steps in the window run by the compiled graph
        _f("compile_recompiles", _I64),  # graphs compiled inside the measured window (expected 0)
        # adapter preparation before the telemetry window (Adapter.prepare; 1.2), e.g. think_budget's
        # calibration: a JSON record (slice, n, measured figures, resulting budget) and the wall time
        # it took in this cell (0 when reused from the run's cache); null for adapters that prepare nothing
        _f("calibration_json", _STR),
        _f("calibration_time_s", _F64),
        # --- training cells (harness/finetune; schema 1.2). Null on evaluation cells. -----------
        _f("cell_kind", _STR),
        # eval cells' decoding (schema 1.4): temperature 0 = greedy; samples_per_doc > 1 = several sample rows per doc
        _f("temperature", _F64),
        _f("top_p", _F64),
        _f("samples_per_doc", _I64),  # eval | finetune (null = eval, files before 1.2)
        _f("task_metric", _STR),  # the task's headline metric: accuracy | f1 | mcc
        _f("task_metric_value", _F64),
        _f("trainable_params", _I64),
        _f("trainable_share", _F64),  # trainable / all parameters of the trained model
        _f("saved_activation_bytes", _I64),  # saved for backward, peak step (saved_tensors_hooks)
        _f("train_time_s", _F64),  # the training telemetry window
        _f("train_energy_j", _F64),
        _f("train_energy_source", _STR),  # same vocabulary as energy_source
        _f("steps", _I64),  # optimizer steps
        _f("final_train_loss", _F64),  # mean loss over the last 10 % of steps
        _f("adapter_bytes", _I64),  # serialized per-task trained state
        _f("switch_time_s", _F64),  # load that state into the live model
        _f("train_config_json", _STR),  # resolved training settings
        _f("technique_json", _STR),  # technique results, e.g. a search's Pareto set
        # --- NLU (GLUE) task metrics, schema 1.2: a task's official metrics besides accuracy,
        # as lm-eval aggregates them (null for tasks without that metric)
        _f("metric_f1", _F64),  # F1 of the positive class (MRPC)
        _f("metric_mcc", _F64),  # Matthews correlation (CoLA)
        _f("metric_pearson", _F64),  # Pearson r of predicted vs gold scores (STS-B)
        _f("metric_spearman", _F64),  # Spearman rho (STS-B)
        _f("latency_attributed", _BOOL),  # per-sample latency_s is a share of a batch's time (log-likelihood)
        # --- end NLU block
        # --- agent cells (τ²-bench through a served variant; harness/agents; schema 1.3). On agent
        # cells accuracy = success_rate (share of simulations with reward 1), latency_p* = simulation
        # wall time, output_tokens_* = the agent's completion tokens, energy_j = the variant's energy
        # (attributed: energy_attributed is true), energy_per_correct_j = energy per success.
        _f("agent_domain", _STR),  # τ² domain (mock | airline | retail | telecom ...)
        _f("agent_tasks", _I64),  # tasks run
        _f("agent_trials", _I64),  # simulations per task
        _f("agent_max_steps", _I64),  # τ²'s step limit
        _f("success_rate", _F64),  # share of scored simulations with reward within 1e-6 of 1
        _f("pass_hat_1", _F64),
        _f("pass_hat_k_json", _STR),  # {"k": mean over tasks of C(c,k)/C(n,k)} for k = 1..trials
        _f("reward_mean", _F64),  # mean τ² reward (null when every task needed the absent judge)
        _f("reward_db_only_mean", _F64),  # mean DB check of tasks that need the NL judge when none was configured
        _f("agent_tokens_per_task", _F64),  # agent prompt + completion tokens (message usage) per simulation
        _f("agent_tokens_per_success", _F64),
        _f("user_tokens_per_task", _F64),  # the user simulator's, same count
        _f("max_steps_rate", _F64),  # share of simulations ended by max_steps
        _f("infra_error_count", _I64),  # simulations lost to an infrastructure error (counted as failures)
        _f("db_mismatch_count", _I64),  # (1.4) simulations whose final database differs from the gold one (db_match false)
        _f("termination_json", _STR),  # {termination_reason: count}
        _f("user_simulator", _STR),  # label of the user simulator (identical across compared variants)
        _f("judge_model", _STR),  # label of the NL-assertion judge; null = none (reward_db_only)
        _f("tau2_version", _STR),
        _f("tau2_data_version", _STR),  # data source, package version, tasks file hash
        # --- end agent block
        # --- proving cells (harness/kinds/prove; schema 1.4): n attempts per problem, each checked
        # by a proof checker. accuracy = pass_at_1 (interval bootstrapped over problems); a cascade
        # (cot_switch: switch) has no pass@k: accuracy = proved_within_budget. pass_at_<k> columns for
        # the suite's report_k are appended like counters.
        _f("pass_at_1", _F64),  # mean over problems of the unbiased pass@1 (Chen et al. 2021)
        _f("pass_at_k_json", _STR),  # {"k": mean pass@k} for every k <= n (null for a cascade)
        _f("problems", _I64),  # problems attempted
        _f("proved", _I64),  # problems with at least one proved attempt
        _f("proved_within_budget", _F64),  # cascade cells: proved / problems
        _f("tokens_per_proved", _F64),  # all attempts' output tokens / problems proved
        _f("energy_per_proved_j", _F64),  # generation energy / problems proved
        _f("check_time_s", _F64),  # checker wall time, outside the generation windows
        _f("check_batches", _I64),  # checker processes / requests run
        _f("check_timeouts", _I64),  # attempts whose check timed out (never proved)
        _f("check_errors", _I64),  # attempts whose checker failed (never proved)
        _f("check_status_json", _STR),  # {check_status: attempts}
        _f("checker_json", _STR),  # checker, version, database hash / Lean version, settings
        # --- end proving block
    ]
)
"""Arrow schema of a cell row (fixed part; ``counter_*`` columns are appended per table)."""

TELEMETRY_SERIES_SCHEMA = pa.schema(
    [
        _f("cell_hash", _STR),
        _f("t_s", _F64),  # since the window's first reading
        _f("device_index", _I64),  # null on CPU
        _f("power_w", _F64),
        _f("device_used_bytes", _I64),
        _f("process_device_used_bytes", _I64),
        _f("gpu_util", _F64),  # 0..1
        _f("rss_bytes", _I64),
        _f("cpu_energy_counter_j", _F64),  # RAPL total since the telemetry started
    ]
)
"""Arrow schema of the opt-in telemetry time series (``<run>/telemetry/<cell_hash>.parquet``)."""

SAMPLE_SCHEMA = pa.schema(
    [
        _f("run_id", _STR, nullable=False),
        _f("cell_hash", _STR, nullable=False),
        _f("model", _STR),
        _f("variant", _STR),
        _f("task", _STR),
        _f("doc_id", _I64, nullable=False),  # lm-eval's doc index within the task
        # (1.4) which of the doc's samples (0..n-1; lm-eval repeats) this row is; 0 for single-sample
        # cells. A row is identified by (doc_id, sample); sample_table writes 0 when a row gives none,
        # and the reader reads files before 1.4 (no column) or a null as 0.
        _f("sample", _I64),
        _f("prompt_hash", _STR),
        _f("prompt_text", _STR),
        _f("output_text", _STR),
        _f("extracted_answer", _STR),
        _f("reference", _STR),
        _f("correct", _F64),  # bool grades stored as 1.0 / 0.0, float scores as is
        _f("grade_reason", _STR),
        _f("input_tokens", _I64),
        _f("output_tokens", _I64),
        _f("finish_reason", _STR),  # stop | length | error
        _f("latency_s", _F64),
        _f("ttft_s", _F64),
        _f("tpot_s", _F64),
        _f("itl_s", pa.list_(_F64)),
        # seconds a request waited for a slot of the continuous batch before it started (its
        # latency, TTFT and TPOT exclude it); 0 for the first batch_size requests; null when not
        # a decode-loop request (log-likelihood, agents) or in files written before it
        _f("queue_s", _F64),
        _f("batch_size", _I64),
        _f("counters_json", _STR),
        # --- agent cells (schema 1.3): one sample = one τ² simulation (task × trial); correct =
        # success, input/output_tokens = the agent's (message usage), latency_s = simulation wall time
        _f("agent_task_id", _STR),
        _f("agent_trial", _I64),
        _f("reward", _F64),  # τ²'s reward; null when the task needs the absent NL judge
        _f("reward_db_only", _F64),  # the DB check alone, for those tasks
        _f("reward_breakdown_json", _STR),
        _f("db_match", _BOOL),  # (1.4) τ²'s DB check: final DB equals the gold actions' DB; null when τ² computed none
        _f("termination_reason", _STR),  # τ²'s (agent_stop, user_stop, max_steps, ..., infrastructure_error)
        _f("infra_error", _BOOL),
        _f("user_input_tokens", _I64),
        _f("user_output_tokens", _I64),
        _f("duration_s", _F64),  # τ²'s simulation duration
        _f("agent_generation_time_s", _F64),  # the variant's served request time within the simulation
        _f("energy_j", _F64),  # the variant's energy for the simulation
        _f("energy_source", _STR),
        _f("energy_attributed", _BOOL),  # a share of a larger measured window
        # --- proving cells (schema 1.4): one row per (problem, attempt); doc_id = problem index,
        # sample = attempt; correct = 1.0 when check_status is proved
        _f("attempt", _I64),
        _f("check_status", _STR),  # proved | failed | rejected | timeout | error
        _f("check_message", _STR),  # first line of the checker's (or the rule's) reason
        _f("check_time_s", _F64),  # this attempt's share of its checker batch's wall time
    ]
)
"""Arrow schema of a sample row (fixed part; ``counter_*`` columns are appended per table)."""

CELL_COLUMNS: tuple[str, ...] = tuple(CELL_SCHEMA.names)
SAMPLE_COLUMNS: tuple[str, ...] = tuple(SAMPLE_SCHEMA.names)


class SchemaVersionError(ValueError):
    """A results file was written with a schema MAJOR version this code cannot read."""


def parse_version(version: str | bytes) -> tuple[int, int]:
    """Parse ``"MAJOR.MINOR"`` into a pair of ints.

    Raises:
        ValueError: if the string is not ``MAJOR.MINOR`` with non-negative integers.
    """
    if isinstance(version, bytes):
        version = version.decode("utf-8", errors="replace")
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(version))
    if not m:
        raise ValueError(f"schema version {version!r} is not of the form MAJOR.MINOR")
    return int(m.group(1)), int(m.group(2))


def is_counter_column(name: str) -> bool:
    """True for an adapter counter column name (``counter_<letters, digits, _>``)."""
    return bool(_COUNTER_RE.match(name))


def is_pass_at_k_column(name: str) -> bool:
    """True for a proving cell's ``pass_at_<k>`` column name (``k`` a positive integer)."""
    return bool(_PASS_AT_K_RE.match(name))


def _is_dynamic(name: str) -> bool:
    return is_counter_column(name) or is_pass_at_k_column(name)


def with_counters(schema: pa.Schema, counter_names: Iterable[str]) -> pa.Schema:
    """Return ``schema`` with ``float64`` fields appended for each counter (or ``pass_at_<k>``)
    name not already in it.

    Counters are appended in sorted order so that the same set of names gives the same schema.
    """
    out = schema
    for name in sorted(set(counter_names)):
        if name in out.names:
            continue
        if not _is_dynamic(name):
            raise ValueError(f"{name!r} is not a counter column name (counter_<letters, digits, _>) nor pass_at_<k>")
        out = out.append(pa.field(name, _F64, nullable=True))
    return out


def _schema_metadata() -> dict[bytes, bytes]:
    return {SCHEMA_VERSION_KEY.encode(): SCHEMA_VERSION.encode()}


def _unknown_key_error(kind: str, unknown: Sequence[str], known: Sequence[str]) -> ValueError:
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    return ValueError(
        f"unknown {kind} column(s): {', '.join(hints)}. Columns are defined in "
        f"harness/results/schema.py (add them there and bump SCHEMA_VERSION's MINOR); adapter "
        f"counters must be named '{COUNTER_PREFIX}<name>', proving cells' extra k as 'pass_at_<k>'."
    )


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


class _Refused(ValueError):
    """A value that pyarrow would accept only by losing information."""


def _coerce(value: Any, type_: pa.DataType) -> Any:
    """Light, lossless coercions that ``pa.array`` does not do on its own."""
    if value is None:
        return None
    if pa.types.is_string(type_):
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, Integral, Real)):  # e.g. task_version 1.0, numeric reference
            return str(value)
        return value  # let pyarrow refuse it with its own message
    if pa.types.is_boolean(type_):
        if isinstance(value, Integral) and value in (0, 1):
            return bool(value)
        return value
    if pa.types.is_integer(type_):
        # pyarrow truncates 0.5 to 0 silently: refuse anything that is not a whole number
        if isinstance(value, Real) and not isinstance(value, Integral):
            f = float(value)
            if math.isnan(f):
                return None
            if not f.is_integer():
                raise _Refused("not a whole number")
            return int(f)
        return value
    if pa.types.is_list(type_):
        if value is not None and not isinstance(value, (list, tuple)):
            try:
                return [float(x) for x in value]  # numpy arrays and other iterables
            except TypeError:
                return value
        return value
    return value


def _column(name: str, values: list[Any], field: pa.Field, kind: str) -> pa.Array:
    coerced = []
    for i, v in enumerate(values):
        try:
            coerced.append(_coerce(v, field.type))
        except _Refused as exc:
            raise ValueError(f"{kind} column {name!r} expects {field.type} (row {i}: {v!r}): {exc}") from None
    try:
        return pa.array(coerced, type=field.type, from_pandas=True)  # NaN -> null
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        bad = next(((i, v) for i, v in enumerate(values) if not _fits(v, field.type)), (None, None))
        where = f" (row {bad[0]}: {bad[1]!r})" if bad[0] is not None else ""
        raise ValueError(f"{kind} column {name!r} expects {field.type}{where}: {exc}") from exc


def _fits(value: Any, type_: pa.DataType) -> bool:
    try:
        pa.array([_coerce(value, type_)], type=type_, from_pandas=True)
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return False


def _build_table(rows: Sequence[Mapping[str, Any]], base: pa.Schema, kind: str) -> pa.Table:
    if isinstance(rows, Mapping):
        raise TypeError(f"{kind}_table expects a list of row dicts, got a single dict")
    known = set(base.names)
    counters: set[str] = set()
    unknown: list[str] = []
    for row in rows:
        for key in row:
            if key in known:
                continue
            if isinstance(key, str) and _is_dynamic(key):
                counters.add(key)
            elif key not in unknown:
                unknown.append(key)
    if unknown:
        raise _unknown_key_error(kind, unknown, list(base.names))
    schema = with_counters(base, counters)
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if not field.nullable:
            missing = [i for i, v in enumerate(values) if _is_missing(v)]
            if missing:
                raise ValueError(
                    f"{kind} column {field.name!r} is required but missing/null in row(s) {missing[:10]}"
                )
        arrays.append(_column(field.name, values, field, kind))
    table = pa.Table.from_arrays(arrays, schema=schema)
    return table.replace_schema_metadata(_schema_metadata())


def cell_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build a cell table (schema :data:`CELL_SCHEMA` + ``counter_*``) from row dicts.

    Missing known columns are filled with nulls; extra ``counter_*`` keys become ``float64``
    columns. ``status`` must be ``"ok"`` or ``"error"``. The table's schema metadata carries
    ``harness_schema_version``.

    Raises:
        ValueError: on an unknown non-counter key, a missing required key (``run_id``,
            ``cell_hash``, ``status``), an invalid status, or a value of the wrong type.
    """
    for i, row in enumerate(rows):
        status = row.get("status")
        if status is not None and status not in CELL_STATUSES:
            raise ValueError(f"cell row {i}: status must be one of {CELL_STATUSES}, got {status!r}")
    return _build_table(rows, CELL_SCHEMA, "cell")


def sample_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build a sample table (schema :data:`SAMPLE_SCHEMA` + ``counter_*``) from row dicts.

    Missing known columns are filled with nulls, except ``sample``, which defaults to 0 (one
    sample per doc); bool ``correct`` values are stored as 1.0/0.0; ``itl_s`` takes any sequence
    of floats (list, tuple, numpy array).

    Raises:
        ValueError: on an unknown non-counter key, a missing required key (``run_id``,
            ``cell_hash``, ``doc_id``), an invalid ``finish_reason`` or ``check_status``, or a
            value of the wrong type.
    """
    for i, row in enumerate(rows):
        fr = row.get("finish_reason")
        if fr is not None and fr not in FINISH_REASONS:
            raise ValueError(
                f"sample row {i}: finish_reason must be one of {FINISH_REASONS}, got {fr!r}"
            )
        cs = row.get("check_status")
        if cs is not None and cs not in CHECK_STATUSES:
            raise ValueError(f"sample row {i}: check_status must be one of {CHECK_STATUSES}, got {cs!r}")
    rows = [row if row.get("sample") is not None else {**row, "sample": 0} for row in rows]
    return _build_table(rows, SAMPLE_SCHEMA, "sample")


def telemetry_series_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build a telemetry time-series table (:data:`TELEMETRY_SERIES_SCHEMA`) from row dicts.

    Raises:
        ValueError: on an unknown key or a value of the wrong type.
    """
    return _build_table(rows, TELEMETRY_SERIES_SCHEMA, "telemetry")

