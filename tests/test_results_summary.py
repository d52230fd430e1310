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
    assert "80.0 [49–94]" in base  # the interval to whole points at 80 columns
    assert "1.23 J" in base and "cc" in base  # energy per sample (12.3 J / 10), the source as a code
    assert "codecarbon_estimate" not in base
    assert "250 ms" in base and "120.0" in base and "baseline ✓" in base
    assert "✓" not in line_of(text, "slow")
    assert "2.5 s" in line_of(text, "slow")
    broken = line_of(text, "broken")
    assert "error [1]" in broken and "✓" not in broken
    assert "[1] gsm8k · broken: CUDA out of memory" in text
    assert "Pareto front of accuracy vs J/sample" in text
    assert text.count("cc = codecarbon_estimate") == 1  # the source said once, in a footnote


def test_front_falls_back_to_latency():
    text = render(summary_table(cells(energy=False)))
    assert "latency p50" in text and "no energy" in text
    base = line_of(text, "baseline")
    assert "baseline ✓" in base and base.rstrip().endswith("-")  # src "-" = unavailable
    assert "- = unavailable" in text


def test_summary_from_reader_and_empty(tmp_path):
    assert "no cells" in render(summary_table(read_cells(tmp_path)))
    store = RunStore(tmp_path, "r")
    for row in cells().to_dict("records"):
        row = {k: v for k, v in row.items() if not (isinstance(v, float) and pd.isna(v))}
        store.write_cell(row, [])
    text = render(summary_table(read_cells(tmp_path)))
    assert "1.23 J" in line_of(text, "baseline") and "baseline ✓" in text


LONG = ["entropy-switch-0.5b", "spec-prompt-lookup", "budget-64", "budget-128", "sparse-top2-bias2"]


def grid(**extra) -> pd.DataFrame:
    """Cells of a full reasoning grid: long variant names, two tasks, every optional column."""
    rows = []
    for task in ("gsm8k", "math500"):
        for k, variant in enumerate(LONG):
            rows.append(dict(
                run_id="r1", model="embedded", task=task, hardware_id="h", batch_size=8, limit=8, variant=variant,
                n=8, status="ok", accuracy=0.125 * k, accuracy_ci95_low=0.0224, accuracy_ci95_high=0.4709,
                output_tokens_mean=189.6, truncation_rate=0.375, latency_p50_s=21.34, latency_p90_s=30.1,
                ttft_p50_s=0.51, throughput_tok_per_s=45.1, energy_j=1234.5 + k, energy_per_sample_j=(1234.5 + k) / 8,
                energy_per_token_j=0.8, energy_source="codecarbon_estimate", output_tokens_total=1517,
                generation_time_s=160.2, **{key: (value(k) if callable(value) else value) for key, value in extra.items()},
            ))
    rows.append(dict(run_id="r1", model="embedded", task="math500", hardware_id="h", batch_size=8, limit=8,
                     variant="spec-draft-0.5b", status="error", error="ValueError: " + "no room for the cue; " * 20))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("extra", [
    {},
    {"flag_interference": lambda k: k == 1, "flag_energy_disagree": lambda k: k == 2},
])
def test_summary_fits_80_columns_and_never_cuts_a_variant_name(extra):
    console = Console(record=True, width=80, color_system=None)
    console.print(summary_table(grid(**extra), title="reasoning-full — r1"))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    table_lines = lines[: next(i for i, line in enumerate(lines) if line.startswith("✓ = Pareto front"))]
    for name in [*LONG, "spec-draft-0.5b"]:
        assert sum(name in line.split() for line in table_lines) == 2 if name in LONG else 1, name
    assert "…" not in "\n".join(table_lines)
    assert "budget-64" in text and "budget-128" in text


def test_wide_adds_the_totals_and_narrow_points_to_it():
    narrow = render(summary_table(grid()))
    wide = render(summary_table(grid(), wide=True))
    assert "harness summary --wide" in narrow and "harness summary --wide" not in wide
    header = line_of(wide, "J/sample")
    for col in ("energy", "tok Σ", "time", "p90", "TTFT", "tok/s"):
        assert col in header and col not in line_of(narrow, "J/sample")
    row = line_of(wide, "entropy-switch-0.5b")
    assert "1.23 kJ" in row and "1517" in row and "160 s" in row and "154 J" in row  # total and per sample
    assert "2.2 [2.2–47.1]" not in row and "0.0 [2.2–47.1]" in row  # full interval in wide


def test_optional_columns_are_null_safe():
    """truncation, flags and τ² database mismatches show when the cells have them, never fail when absent."""
    plain = grid().drop(columns=["truncation_rate"])
    text = render(summary_table(plain))
    header = line_of(text, "J/sample")
    assert "trunc" not in header and "flag" not in header and "db≠" not in header
    nulls = grid(flag_interference=None, flag_energy_disagree=None, db_mismatch_count=None)
    header = line_of(render(summary_table(nulls)), "J/sample")
    assert "trunc" in header and "flag" not in header and "db≠" not in header
    flagged = render(summary_table(grid(flag_interference=lambda k: k == 1, flag_energy_disagree=lambda k: k in (1, 3))))
    assert "IE" in line_of(flagged, "spec-prompt-lookup") and " E " in line_of(flagged, "budget-128") + " "
    assert "flag I = " in flagged and "(flag_interference)" in flagged and "(flag_energy_disagree)" in flagged
    assert "38%" in line_of(flagged, "budget-64")  # truncation rate
    agents = grid(db_mismatch_count=lambda k: k, cell_kind="agent")
    text = render(summary_table(agents))
    assert "db≠" in line_of(text, "J/sample") and "db_mismatch_count" in text
    assert line_of(text, "sparse-top2-bias2").split()[-1] == "4"


def test_energy_per_sample_is_derived_for_files_without_it():
    old = cells().drop(columns=["energy_per_token_j"])  # no energy_per_sample_j either (schema 1.0)
    text = render(summary_table(old))
    assert "1.23 J" in line_of(text, "baseline") and "4 J" in line_of(text, "slow")
    assert "accuracy vs J/sample" in text


def test_the_only_variant_of_a_slice_is_not_marked_on_the_front():
    one = cells().assign(batch_size=[1, 8, 8])  # baseline alone at batch 1; slow and broken at batch 8
    text = render(summary_table(one))
    assert "✓" not in line_of(text, "baseline") and "✓" not in line_of(text, "slow")  # slow is alone among ok cells
    assert "no ✓ for 2 cell(s): the only variant in their slice" in text


def test_cli_summary_wide(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    store = RunStore(tmp_path, "r")
    for row in cells().to_dict("records"):
        store.write_cell({k: v for k, v in row.items() if not (isinstance(v, float) and pd.isna(v))}, [])
    narrow = CliRunner().invoke(app, ["summary", str(tmp_path)])
    wide = CliRunner().invoke(app, ["summary", str(tmp_path), "--wide"])
    assert narrow.exit_code == 0 and wide.exit_code == 0
    assert "tok Σ" in wide.output and "tok Σ" not in narrow.output
    assert "12.3 J" in wide.output  # the cell's total energy


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


def test_wide_in_80_columns_folds_figures_but_keeps_names_whole():
    console = Console(record=True, width=80, color_system=None)
    console.print(summary_table(grid(), wide=True))
    lines = console.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    words = {w for line in lines for w in line.split()}
    assert set(LONG) <= words and {"gsm8k", "math500"} <= words
