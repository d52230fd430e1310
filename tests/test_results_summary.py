"""Summary table: display units, energy source, error rows, front marker and axis fallback."""

from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console

from harness.results.reader import read_cells
from harness.results.store import RunStore
from harness.results.summary import format_energy, format_seconds, summary_table


def render(table) -> str:
    console = Console(record=True, width=250, color_system=None)
    console.print(table)
    return console.export_text()


def cells(energy=True):
    base = dict(model="m", task="gsm8k", hardware_id="h", batch_size=1, n=10, status="ok")
    rows = [
        dict(base, cell_hash="a", variant="baseline", accuracy=0.8, accuracy_ci95_low=0.4902,
             accuracy_ci95_high=0.9433, output_tokens_mean=120.0, latency_p50_s=0.25,
             energy_j=12.3, energy_source="codecarbon_estimate", energy_per_token_j=0.01),
        dict(base, cell_hash="b", variant="slow", accuracy=0.7, accuracy_ci95_low=0.4,
             accuracy_ci95_high=0.9, output_tokens_mean=200.0, latency_p50_s=2.5,
             energy_j=40.0, energy_source="codecarbon_estimate", energy_per_token_j=0.02),
        dict(base, cell_hash="c", variant="broken", status="error", error="CUDA out of memory"),
    ]
    if not energy:
        for r in rows:
            r.pop("energy_j", None)
            r.pop("energy_per_token_j", None)
            r["energy_source"] = "unavailable"
    return pd.DataFrame(rows)


def line_of(text: str, word: str) -> str:
    return next(line for line in text.splitlines() if word in line)


def test_summary_contents():
    text = render(summary_table(cells()))
    base = line_of(text, "baseline")
    assert "80.0% [49.0–94.3]" in base
    assert "12.3 J (codecarbon_estimate)" in base
    assert "250 ms" in base and "120.0" in base and "✓" in base
    assert "✓" not in line_of(text, "slow")
    assert "2.5 s" in line_of(text, "slow")
    broken = line_of(text, "broken")
    assert "error: CUDA out of memory" in broken and "✓" not in broken
    assert "energy per output token" in text


def test_front_falls_back_to_latency():
    text = render(summary_table(cells(energy=False)))
    assert "latency p50" in text and "no energy" in text
    assert "— (unavailable)" in line_of(text, "baseline")
    assert "✓" in line_of(text, "baseline")


def test_summary_from_reader_and_empty(tmp_path):
    assert "no cells" in render(summary_table(read_cells(tmp_path)))
    store = RunStore(tmp_path, "r")
    for row in cells().to_dict("records"):
        row = {k: v for k, v in row.items() if not (isinstance(v, float) and pd.isna(v))}
        store.write_cell(row, [])
    text = render(summary_table(read_cells(tmp_path)))
    assert "12.3 J (codecarbon_estimate)" in line_of(text, "baseline")
    assert "✓" in line_of(text, "baseline")


def test_display_units():
    assert format_seconds(0.0004) == "400 µs"
    assert format_seconds(None) == "—"
    assert format_energy(0.0123, "rapl") == "12.3 mJ (rapl)"
    assert format_energy(4567.0) == "4.57 kJ"


def test_spread_over_repeats_reports_cv_per_cell():
    from harness.results.spread import repeat_spread
    from harness.results.summary import spread_table

    base = {"run_id": "r", "model": "m", "dtype": "fp32", "batch_size": 1, "task": "t", "task_version": "1",
            "params_hash": "p", "status": "ok"}
    rows = [
        {**base, "variant": "a", "repeat": i, "latency_p50_s": v, "energy_j": 10.0}
        for i, v in enumerate([1.0, 2.0, 3.0])
    ] + [{**base, "variant": "b", "repeat": 0, "latency_p50_s": 5.0}]  # not repeated: no spread row
    rows.append({**base, "variant": "a", "repeat": 3, "latency_p50_s": 100.0, "status": "error"})  # ignored
    spread = repeat_spread(pd.DataFrame(rows))
    assert list(spread["variant"]) == ["a"]
    row = spread.iloc[0]
    assert row["repeats"] == 3
    assert row["latency_p50_s_mean"] == pytest.approx(2.0)
    assert row["latency_p50_s_cv"] == pytest.approx(0.5)  # std 1.0 (ddof=1) / mean 2.0
    assert row["energy_j_cv"] == pytest.approx(0.0)
    assert spread_table(pd.DataFrame(rows)) is not None
    assert spread_table(pd.DataFrame(rows[3:4])) is None
