"""Schema: the columns of docs/CONTRACTS.md, null filling, counters, refusal of unknown keys."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from harness.results.schema import (
    CELL_SCHEMA,
    SAMPLE_SCHEMA,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    cell_table,
    parse_version,
    sample_table,
    with_counters,
)

# Copied from docs/CONTRACTS.md: a column dropped from the schema must fail here.
CONTRACT_CELL_COLUMNS = """
run_id cell_hash params_hash hardware_id provenance_json temperature top_p samples_per_doc suite model dtype device batch_size variant adapter
params_json task task_version limit repeat seed status error started_at finished_at
n accuracy accuracy_ci95_low accuracy_ci95_high n_correct
output_tokens_mean output_tokens_total input_tokens_mean truncation_rate correct_truncated latency_p50_s
latency_p90_s latency_p99_s ttft_p50_s tpot_p50_s throughput_tok_per_s generation_time_s
tokens_per_correct param_bytes compression_ratio
duration_s energy_j energy_source energy_estimated energy_attributed energy_counter_j
energy_integral_j energy_assumed_power_w avg_power_w idle_power_w idle_power_source co2_kg
co2_source peak_rss_bytes peak_rss_source peak_allocated_bytes peak_reserved_bytes
peak_device_used_bytes peak_process_device_used_bytes gpu_util_mean sampler_period_s
sampler_achieved_period_s sampler_missed_ticks flag_short_window flag_counter_reset
flag_energy_disagree flag_memory_order other_cpu_share other_gpu_processes other_gpu_memory_bytes
other_gpu_util_max flag_interference itl_p50_s itl_p90_s itl_p99_s
energy_per_token_j energy_per_sample_j energy_per_correct_j warmup_requests warmup_time_s
compile compiled_steps_share compile_recompiles
calibration_json calibration_time_s
""".split() + """
cell_kind task_metric task_metric_value trainable_params trainable_share saved_activation_bytes
train_time_s train_energy_j train_energy_source steps final_train_loss adapter_bytes switch_time_s
train_config_json technique_json
""".split() + """
metric_f1 metric_mcc metric_pearson metric_spearman latency_attributed
""".split() + """
agent_domain agent_tasks agent_trials agent_max_steps success_rate pass_hat_1 pass_hat_k_json
reward_mean reward_db_only_mean agent_tokens_per_task agent_tokens_per_success user_tokens_per_task
max_steps_rate infra_error_count db_mismatch_count termination_json user_simulator judge_model tau2_version
tau2_data_version
""".split() + """
pass_at_1 pass_at_k_json problems proved proved_within_budget tokens_per_proved energy_per_proved_j
check_time_s check_batches check_timeouts check_errors check_status_json checker_json
""".split()

CONTRACT_SAMPLE_COLUMNS = """
run_id cell_hash model variant task doc_id sample prompt_hash prompt_text output_text extracted_answer
reference correct grade_reason input_tokens output_tokens finish_reason latency_s ttft_s tpot_s
itl_s queue_s batch_size counters_json
""".split() + """
agent_task_id agent_trial reward reward_db_only reward_breakdown_json db_match termination_reason infra_error
user_input_tokens user_output_tokens duration_s agent_generation_time_s energy_j energy_source
energy_attributed
""".split() + """
attempt check_status check_message check_time_s
""".split()


def test_schema_has_every_contract_column():
    assert sorted(CELL_SCHEMA.names) == sorted(CONTRACT_CELL_COLUMNS)
    assert sorted(SAMPLE_SCHEMA.names) == sorted(CONTRACT_SAMPLE_COLUMNS)
    assert len(set(CELL_SCHEMA.names)) == len(CELL_SCHEMA.names)


def test_units_and_types():
    for f in CELL_SCHEMA:
        if f.name.endswith(("_s", "_j", "_w")):
            assert f.type == pa.float64(), f.name
        if f.name.endswith("_bytes"):
            assert f.type == pa.int64(), f.name
        if f.name.endswith("_source"):
            assert f.type == pa.string(), f.name
    assert SAMPLE_SCHEMA.field("itl_s").type == pa.list_(pa.float64())
    assert CELL_SCHEMA.field("flag_short_window").type == pa.bool_()


def test_nullable_except_identity_keys():
    required_cells = {f.name for f in CELL_SCHEMA if not f.nullable}
    required_samples = {f.name for f in SAMPLE_SCHEMA if not f.nullable}
    assert required_cells == {"run_id", "cell_hash", "status"}
    assert required_samples == {"run_id", "cell_hash", "doc_id"}


def test_version_format():
    assert parse_version(SCHEMA_VERSION)[0] == 1
    assert parse_version(b"2.13") == (2, 13)
    with pytest.raises(ValueError):
        parse_version("1")
    with pytest.raises(ValueError):
        parse_version("v1.0")


def test_cell_table_fills_missing_with_nulls_and_stores_version():
    t = cell_table([{"run_id": "r", "cell_hash": "c", "status": "ok", "accuracy": 0.5}])
    assert t.num_rows == 1
    assert t.schema.metadata[SCHEMA_VERSION_KEY.encode()] == SCHEMA_VERSION.encode()
    row = t.to_pylist()[0]
    assert row["accuracy"] == 0.5
    assert row["energy_j"] is None and row["model"] is None and row["flag_short_window"] is None
    assert t.schema.names[: len(CELL_SCHEMA)] == CELL_SCHEMA.names


def test_cell_table_empty_has_schema():
    t = cell_table([])
    assert t.num_rows == 0 and t.schema.names == CELL_SCHEMA.names


def test_unknown_column_refused_with_hint():
    with pytest.raises(ValueError, match=r"accuarcy.*did you mean 'accuracy'"):
        cell_table([{"run_id": "r", "cell_hash": "c", "status": "ok", "accuarcy": 0.5}])
    with pytest.raises(ValueError, match="unknown sample column"):
        sample_table([{"run_id": "r", "cell_hash": "c", "doc_id": 0, "latency": 1.0}])
    with pytest.raises(ValueError, match="counter_"):
        cell_table([{"run_id": "r", "cell_hash": "c", "status": "ok", "counter_": 1.0}])


def test_counter_columns_accepted_as_float64():
    rows = [
        {"run_id": "r", "cell_hash": "a", "status": "ok", "counter_reasoning_tokens_mean": 12},
        {"run_id": "r", "cell_hash": "b", "status": "ok", "counter_layers_executed_mean": 3.5},
    ]
    t = cell_table(rows)
    assert t.schema.field("counter_reasoning_tokens_mean").type == pa.float64()
    assert t.schema.names[-2:] == ["counter_layers_executed_mean", "counter_reasoning_tokens_mean"]
    assert t.column("counter_reasoning_tokens_mean").to_pylist() == [12.0, None]
    s = sample_table([{"run_id": "r", "cell_hash": "a", "doc_id": 1, "counter_switches": 2}])
    assert s.column("counter_switches").to_pylist() == [2.0]


def test_pass_at_k_columns_are_dynamic_and_check_status_is_checked():
    t = cell_table([{"run_id": "r", "cell_hash": "a", "status": "ok", "pass_at_1": 0.5, "pass_at_8": 0.75}])
    assert t.schema.field("pass_at_8").type == pa.float64() and t.column("pass_at_8").to_pylist() == [0.75]
    with pytest.raises(ValueError, match="unknown cell column"):
        cell_table([{"run_id": "r", "cell_hash": "a", "status": "ok", "pass_at_k": 0.5}])
    with pytest.raises(ValueError, match="check_status must be one of"):
        sample_table([{"run_id": "r", "cell_hash": "c", "doc_id": 0, "check_status": "passed"}])


def test_with_counters_is_order_independent():
    assert with_counters(CELL_SCHEMA, ["counter_b", "counter_a"]) == with_counters(
        CELL_SCHEMA, ["counter_a", "counter_b", "counter_a"]
    )


def test_required_keys_and_status_checked():
    with pytest.raises(ValueError, match="'cell_hash' is required"):
        cell_table([{"run_id": "r", "status": "ok"}])
    with pytest.raises(ValueError, match="status must be one of"):
        cell_table([{"run_id": "r", "cell_hash": "c", "status": "done"}])
    with pytest.raises(ValueError, match="finish_reason must be one of"):
        sample_table([{"run_id": "r", "cell_hash": "c", "doc_id": 0, "finish_reason": "eos"}])


def test_wrong_type_names_the_column():
    with pytest.raises(ValueError, match=r"column 'batch_size' expects int64.*row 0"):
        cell_table([{"run_id": "r", "cell_hash": "c", "status": "ok", "batch_size": "eight"}])
    with pytest.raises(ValueError, match="column 'limit'"):
        cell_table([{"run_id": "r", "cell_hash": "c", "status": "ok", "limit": 0.5}])


def test_lossless_coercions():
    s = sample_table(
        [
            {
                "run_id": "r",
                "cell_hash": "c",
                "doc_id": np.int64(3),
                "correct": True,
                "reference": 42,
                "itl_s": np.array([0.01, 0.02]),
                "output_tokens": 3.0,
            },
            {"run_id": "r", "cell_hash": "c", "doc_id": 4, "correct": 0.25, "itl_s": (0.5,)},
        ]
    )
    rows = s.to_pylist()
    assert rows[0]["correct"] == 1.0 and rows[1]["correct"] == 0.25
    assert rows[0]["reference"] == "42"
    assert rows[0]["itl_s"] == [0.01, 0.02] and rows[1]["itl_s"] == [0.5]
    assert rows[0]["output_tokens"] == 3
    c = cell_table([{"run_id": "r", "cell_hash": "c", "status": "ok", "task_version": 1.0,
                     "flag_short_window": 0}])
    assert c.column("task_version").to_pylist() == ["1.0"]
    assert c.column("flag_short_window").to_pylist() == [False]
