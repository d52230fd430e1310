"""Pareto front on hand-built cases: dominance, ties, nulls, groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.results.pareto import COST_AXES, pareto_front, pareto_mask


def frame(points, **cols):
    acc, cost = zip(*points) if points else ((), ())
    df = pd.DataFrame({"accuracy": acc, "energy_per_token_j": cost})
    for k, v in cols.items():
        df[k] = v
    return df


def test_dominated_point_is_off():
    # (0.6, 2.0) is dominated by (0.7, 1.0); (0.9, 5.0) trades accuracy for cost
    df = frame([(0.7, 1.0), (0.6, 2.0), (0.9, 5.0), (0.9, 6.0), (0.5, 0.5)])
    assert pareto_front(df, group_cols=()).tolist() == [True, False, True, False, True]


def test_equal_accuracy_lower_cost_dominates():
    df = frame([(0.7, 1.0), (0.7, 1.5), (0.8, 1.0)])
    assert pareto_front(df, group_cols=()).tolist() == [False, False, True]


def test_ties_kept():
    df = frame([(0.7, 1.0), (0.7, 1.0), (0.5, 2.0)])
    assert pareto_front(df, group_cols=()).tolist() == [True, True, False]


def test_nulls_never_on_front_and_do_not_dominate():
    df = frame([(None, 0.1), (0.99, None), (0.5, 1.0), (np.nan, np.nan)])
    assert pareto_front(df, group_cols=()).tolist() == [False, False, True, False]
    assert not pareto_front(frame([(None, None)]), group_cols=()).any()
    df = pd.DataFrame(
        {"accuracy": pd.array([0.5, pd.NA], dtype="Float64"),
         "energy_per_token_j": pd.array([1.0, 0.5], dtype="Float64")}
    )
    assert pareto_front(df, group_cols=()).tolist() == [True, False]


def test_groups_are_separate_slices():
    df = frame(
        [(0.9, 1.0), (0.5, 2.0), (0.5, 2.0), (0.4, 3.0), (0.3, 1.0)],
        model=["a", "a", "b", "b", "b"],
        task=["t"] * 5,
        hardware_id=["h"] * 5,
        batch_size=[1] * 5,
    )
    # (0.5, 2.0) is dominated in model a but on the front in model b
    assert pareto_front(df).tolist() == [True, False, True, False, True]


def test_null_group_value_is_its_own_group():
    df = frame([(0.9, 1.0), (0.5, 2.0)], model=["a", None], task="t", hardware_id="h", batch_size=1)
    assert pareto_front(df).tolist() == [True, True]


def test_index_preserved_and_cost_axis_choice():
    df = frame([(0.7, 1.0), (0.6, 2.0)])
    df.index = [10, 20]
    df["latency_p50_s"] = [5.0, 1.0]
    front = pareto_front(df, cost_col="latency_p50_s", group_cols=())
    assert front.index.tolist() == [10, 20] and front.tolist() == [True, True]
    assert front.dtype == bool


def test_missing_column_and_empty():
    with pytest.raises(KeyError, match="model"):
        pareto_front(frame([(0.5, 1.0)]))
    empty = frame([], model=[], task=[], hardware_id=[], batch_size=[])
    assert pareto_front(empty).empty


def test_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    acc = rng.integers(0, 5, 60) / 4
    cost = rng.integers(0, 5, 60).astype(float)
    mask = pareto_mask(acc, cost)
    for i in range(60):
        dominated = any(
            acc[j] >= acc[i] and cost[j] <= cost[i] and (acc[j] > acc[i] or cost[j] < cost[i])
            for j in range(60)
        )
        assert mask[i] == (not dominated)


def test_cost_axes():
    assert set(COST_AXES) == {
        "energy_per_correct_j", "energy_per_token_j", "energy_per_sample_j", "latency_p50_s", "latency_p90_s",
        "output_tokens_mean", "peak_rss_bytes", "ttft_p50_s",
        # training cells
        "trainable_params", "saved_activation_bytes", "train_time_s", "train_energy_j",
        # agent cells (τ²)
        "agent_tokens_per_task", "agent_tokens_per_success",
    }
    for name, (column, label, unit) in COST_AXES.items():
        assert column == name and label and unit
    assert COST_AXES["latency_p50_s"].unit == "s"
