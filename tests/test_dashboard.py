"""The leaderboard web app (dashboard/), driven with Streamlit's AppTest on synthetic results
written through harness.results.RunStore (made-up numbers, never copied from a run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard import synthetic  # noqa: E402
from dashboard.charts import depth_figure, front_markup, pareto_figure  # noqa: E402
from dashboard.data import best_per_variant, load  # noqa: E402
from dashboard.tables import axis_energy_note, best_within, compare_runs, depth_curves, pareto_slice  # noqa: E402
from harness.results import RunStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")
RUN1 = "20260101T000000Z-synth-0001"
RUN2 = "20260102T000000Z-synth-0002"

# A Pareto case with a tie and dominated points (energy per token ↓, accuracy ↑), one slice:
#   A 0.8 @ 1.0   C 0.7 @ 0.4   T 0.7 @ 0.4 (tie with C)   B 0.6 @ 0.5 (dominated by C)
#   D 0.5 @ 2.0 (dominated)     E 0.8 @ 1.5 (same accuracy as A, costlier: dominated)
# On the latency axis the front differs: A (5 s), B (1 s), D (0.5 s).
PARETO = {
    # variant: (n_correct of 10, energy_per_token_j, latency_p50_s)
    "A": (8, 1.0, 5.0),
    "B": (6, 0.5, 1.0),
    "C": (7, 0.4, 6.0),
    "T": (7, 0.4, 6.0),
    "D": (5, 2.0, 0.5),
    "E": (8, 1.5, 7.0),
}
ENERGY_FRONT = {"A", "C", "T"}
LATENCY_FRONT = {"A", "B", "D"}


def _pareto_cells(run_id: str, task: str = "gsm8k") -> list[dict]:
    adapters = {"A": "baseline", "B": "int8", "C": "think_budget", "T": "think_budget", "D": "int8", "E": "baseline"}
    return [
        synthetic.cell(
            run_id,
            variant=v,
            adapter=adapters[v],
            params={"v": v},
            task=task,
            n=10,
            n_correct=k,
            energy_per_token_j=e,
            latency_p50_s=lat,
            counter_reasoning_tokens_mean=float(k * 10),
        )
        for v, (k, e, lat) in PARETO.items()
    ]


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two runs: run 1 has the Pareto case on gsm8k, two math500 cells and a failed cell; run 2
    repeats two gsm8k variants with other numbers (for Compare)."""
    root = tmp_path / "results"
    cells1 = _pareto_cells(RUN1) + [
        synthetic.cell(RUN1, variant="A", adapter="baseline", params={"v": "A"}, task="math500", n=10, n_correct=3),
        synthetic.cell(RUN1, variant="B", adapter="int8", params={"v": "B"}, task="math500", n=10, n_correct=2),
        synthetic.cell(
            RUN1, variant="broken", adapter="int8", task="math500", status="error",
            error="RuntimeError: out of memory in the synthetic fixture",
        ),
    ]
    synthetic.write_run(root, RUN1, cells1)
    cells2 = [
        synthetic.cell(RUN2, variant="A", adapter="baseline", params={"v": "A"}, n=10, n_correct=6, energy_per_token_j=1.2, latency_p50_s=5.0),
        synthetic.cell(RUN2, variant="B", adapter="int8", params={"v": "B"}, n=10, n_correct=7, energy_per_token_j=0.3, latency_p50_s=1.0),
    ]
    synthetic.write_run(root, RUN2, cells2)
    return root


def _app(root: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("HARNESS_RESULTS", str(root))
    return AppTest.from_file(APP, default_timeout=60)


def _front_variants(at: AppTest) -> tuple[str, set[str]]:
    """(axis, variants) from the front's markup on the Pareto page."""
    import re

    html = next(m.value for m in at.markdown if 'class="pareto-front"' in m.value)
    axis = re.search(r'data-axis="([^"]+)"', html).group(1)
    return axis, set(re.findall(r'data-variant="([^"]+)"', html))


# ---- pure functions -----------------------------------------------------------------------------


def test_pareto_slice_ties_and_dominated_points(results: Path):
    cells = load(results).cells
    one = cells[(cells["run_id"] == RUN1) & (cells["task"] == "gsm8k")]
    energy = pareto_slice(one, "energy_per_token_j")
    assert set(energy.loc[energy["on_front"], "variant"]) == ENERGY_FRONT
    latency = pareto_slice(one, "latency_p50_s")
    assert set(latency.loc[latency["on_front"], "variant"]) == LATENCY_FRONT
    best = best_within(energy, 0.45)
    assert best["variant"] in {"C", "T"} and best["accuracy"] == pytest.approx(0.7)
    assert best_within(energy, 0.1) is None


def test_batch_size_and_hardware_never_share_a_front(tmp_path: Path):
    root = tmp_path / "r"
    synthetic.write_run(
        root,
        RUN1,
        [
            synthetic.cell(RUN1, variant="big", n=10, n_correct=9, energy_per_token_j=1.0, batch_size=8),
            synthetic.cell(RUN1, variant="small", n=10, n_correct=5, energy_per_token_j=2.0, batch_size=1),
            synthetic.cell(RUN1, variant="gpu", n=10, n_correct=4, energy_per_token_j=3.0, hardware_id="other-hw"),
        ],
    )
    pts = pareto_slice(load(root).cells, "energy_per_token_j")
    # each is alone in its (model, task, hardware, batch) group: the only variant, not "on the front"
    assert pts["sole"].all() and not pts["on_front"].any()


def test_energy_axis_labelled_as_estimate(results: Path):
    pts = pareto_slice(load(results).cells.query("run_id == @RUN1 and task == 'gsm8k'"), "energy_per_token_j")
    note = axis_energy_note(pts, "energy_per_token_j")
    assert note == "modelled estimate (codecarbon_estimate)"
    fig = pareto_figure(pts, "energy_per_token_j", note=note)
    assert "modelled estimate" in fig.layout.xaxis.title.text
    assert axis_energy_note(pts, "latency_p50_s") is None
    markup = front_markup(pts, "energy_per_token_j")
    assert markup.count('class="front-row"') == len(ENERGY_FRONT)


def test_best_per_variant_and_compare(results: Path):
    cells = load(results).cells
    best = best_per_variant(cells)
    assert (best["status"] == "ok").all()
    a = best[(best["task"] == "gsm8k") & (best["variant"] == "A")]
    assert len(a) == 1 and a["run_id"].iloc[0] == RUN1  # 0.8 beats run 2's 0.6
    b = best[(best["task"] == "gsm8k") & (best["variant"] == "B")]
    assert b["run_id"].iloc[0] == RUN2
    cmp = compare_runs(cells[cells.run_id == RUN1], cells[cells.run_id == RUN2]).set_index(["task", "variant"])
    assert cmp.loc[("gsm8k", "A"), "accuracy_delta"] == pytest.approx(-0.2)
    assert cmp.loc[("gsm8k", "B"), "energy_per_token_j_delta"] == pytest.approx(0.3 / 0.5 - 1)
    assert cmp.loc[("gsm8k", "C"), "only_in"] == "A"


# depth exits (sorted_depth): (n_correct of 10 at the deepest exit, per-depth accuracies)
DEPTHS = {
    "sorted-depth": (9, {2: 0.6, 4: 0.75, 6: 0.9}),
    "sorted-depth-b": (8, {2: 0.5, 4: 0.7, 6: 0.8}),
}


def _finetune_cells(run_id: str, task: str = "sst2") -> list[dict]:
    """Training cells: two sorted_depth variants with counter_accuracy_depth_{2,4,6}, one full
    fine-tune without per-depth columns."""
    rows = [
        synthetic.cell(
            run_id, variant=v, adapter="sorted_depth", params={"depths": [2, 4, 6], "v": v}, task=task,
            n=10, n_correct=k, suite="nlu", cell_kind="finetune", task_metric="accuracy", task_metric_value=k / 10,
            **{f"counter_accuracy_depth_{d}": a for d, a in acc.items()},
        )
        for v, (k, acc) in DEPTHS.items()
    ]
    rows.append(
        synthetic.cell(
            run_id, variant="full_ft", adapter="full_ft", task=task, n=10, n_correct=9, suite="nlu",
            cell_kind="finetune", task_metric="accuracy", task_metric_value=0.9,
        )
    )
    return rows


def test_depth_curves_points_from_per_depth_columns(tmp_path: Path):
    root = tmp_path / "r"
    synthetic.write_run(root, RUN1, _finetune_cells(RUN1) + _pareto_cells(RUN1), suite="nlu")
    cells = load(root).cells  # eval cells read back with null counter_accuracy_depth_* columns
    curves = depth_curves(cells)
    assert set(curves["line"]) == set(DEPTHS)  # full_ft and the eval cells have no curve
    assert set(curves["task"]) == {"sst2"} and set(curves["metric"]) == {"accuracy"}
    for variant, (k, acc) in DEPTHS.items():
        line = curves[curves["line"] == variant].sort_values("depth")
        assert line["depth"].tolist() == [2, 4, 6]
        assert line["value"].tolist() == pytest.approx(list(acc.values()))
        full = line[line["full_depth"]]
        assert full["depth"].tolist() == [6]
        # the full-depth point is the cell's own metric
        assert full["value"].iloc[0] == pytest.approx(full["cell_value"].iloc[0]) == pytest.approx(k / 10)

    fig = depth_figure(curves, title="sst2")
    assert fig is not None
    lines = {t.name: t for t in fig.data if t.mode == "lines+markers"}
    assert set(lines) == set(DEPTHS)
    assert list(lines["sorted-depth"].x) == [2, 4, 6]
    assert list(lines["sorted-depth"].y) == pytest.approx([0.6, 0.75, 0.9])
    assert "exit depth" in fig.layout.xaxis.title.text and "accuracy" in fig.layout.yaxis.title.text


def test_depth_curves_one_panel_per_task_and_metric():
    cells = pd.DataFrame(
        [
            synthetic.cell(RUN1, variant="sd", adapter="sorted_depth", task="sst2", cell_kind="finetune",
                           counter_accuracy_depth_2=0.7, counter_accuracy_depth_4=0.8),
            synthetic.cell(RUN1, variant="sd", adapter="sorted_depth", task="cola", cell_kind="finetune",
                           task_metric="mcc", task_metric_value=0.3, counter_mcc_depth_2=0.1, counter_mcc_depth_4=0.3),
        ]
    )
    curves = depth_curves(cells)
    assert sorted(set(zip(curves["task"], curves["metric"]))) == [("cola", "mcc"), ("sst2", "accuracy")]
    cola = curves[curves["task"] == "cola"]
    assert cola["value"].tolist() == pytest.approx([0.1, 0.3])
    assert cola.loc[cola["full_depth"], "cell_value"].iloc[0] == pytest.approx(0.3)
    fig = depth_figure(curves)
    assert len([a for a in fig.layout.annotations]) == 2  # one titled panel each


def test_no_depth_columns_no_depth_chart(results: Path):
    cells = load(results).cells  # eval cells only
    assert depth_curves(cells).empty and depth_figure(depth_curves(cells)) is None
    no_depths = pd.DataFrame([c for c in _finetune_cells(RUN1) if c["variant"] == "full_ft"])
    assert depth_curves(no_depths).empty and depth_figure(depth_curves(no_depths)) is None
    # per-depth columns on an evaluation cell are not a trained model's exits
    eval_cell = pd.DataFrame([synthetic.cell(RUN1, variant="x", counter_accuracy_depth_2=0.5)])
    assert depth_curves(eval_cell).empty


# ---- the app ------------------------------------------------------------------------------------


def test_leaderboard_renders_tables_filters_and_failed_cells(results: Path, monkeypatch):
    at = _app(results, monkeypatch).run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["synth · gsm8k", "synth · math500"]
    assert any("out of memory in the synthetic fixture" in str(d.value.to_dict()) for d in at.dataframe)
    assert any("failed" in e.value for e in at.error)
    table = next(d.value for d in at.dataframe if "accuracy" in d.value.columns)
    assert {"accuracy", "accuracy_ci", "latency_p50_s", "energy_per_sample_j", "peak_rss_mib",
            "output_tokens_mean", "truncation_rate"} <= set(table.columns)
    # settings shared by the whole table are said once, above it
    assert any("energy source codecarbon_estimate" in c.value and "limit 10" in c.value for c in at.caption)
    assert table["accuracy"].is_monotonic_decreasing  # default order: best first
    assert len(table) == len(PARETO)  # best per variant: one row each
    more = ["latency_p90_s", "energy_per_token_j", "energy_per_correct_j", "throughput_tok_per_s",
            "counter_reasoning_tokens_mean"]
    assert not set(more) & set(table.columns)  # one pick away
    at.multiselect(key="leaderboard_extra").set_value(more).run()
    table = next(d.value for d in at.dataframe if "accuracy" in d.value.columns)
    assert set(more) <= set(table.columns)
    at.multiselect(key="leaderboard_extra").set_value([]).run()

    at.multiselect(key="filter_task").set_value(["math500"]).run()
    assert [s.value for s in at.subheader] == ["synth · math500"]
    at.multiselect(key="filter_task").set_value([]).run()
    at.multiselect(key="filter_adapter").set_value(["int8"]).run()
    tables = [d.value for d in at.dataframe if "accuracy" in d.value.columns]
    assert all(set(t["adapter"]) == {"int8"} for t in tables)

    at.multiselect(key="filter_adapter").set_value([]).run()
    at.radio(key="view").set_value("all").run()
    gsm = next(d.value for d in at.dataframe if "accuracy" in d.value.columns)
    assert len(gsm) == len(PARETO) + 2  # run 2's A and B as well
    assert set(gsm["run_id"]) == {RUN1, RUN2}
    assert at.get("download_button")  # CSV export


def test_pareto_page_front_and_axis_switch(results: Path, monkeypatch):
    at = _app(results, monkeypatch).run()
    at.multiselect(key="filter_run_id").set_value([RUN1]).run()
    at.switch_page("views/pareto.py").run()
    assert not at.exception
    assert at.selectbox(key="pareto_task").value == "gsm8k"
    axis, front = _front_variants(at)
    # energy per sample (derived as energy_j / n for files without it), as the CLI summary
    assert (axis, front) == ("energy_per_sample_j", ENERGY_FRONT)
    assert any("modelled" in c.value for c in at.caption)
    at.selectbox(key="pareto_axis").set_value("latency_p50_s").run()
    assert _front_variants(at) == ("latency_p50_s", LATENCY_FRONT)
    at.toggle(key="pareto_log_x").set_value(True).run()
    assert not at.exception
    # the budget slider answers "best accuracy within this cost"
    slider = at.select_slider(key="pareto_budget_latency_p50_s_gsm8k_" + at.selectbox(key="pareto_hardware").value + "_8")
    slider.set_value(1.0).run()
    assert any("best accuracy **60.0%** by `B`" in m.value for m in at.markdown)


def test_pareto_page_depth_curves_only_with_per_depth_columns(results: Path, monkeypatch):
    at = _app(results, monkeypatch).run()
    at.switch_page("views/pareto.py").run()
    assert not at.exception
    assert "Depth curves" not in [s.value for s in at.subheader]  # eval cells only: no section
    synthetic.write_run(results, "20260103T000000Z-nlu-0003", _finetune_cells("20260103T000000Z-nlu-0003"), suite="nlu")
    at.run()
    at.selectbox(key="pareto_task").set_value("sst2").run()
    assert not at.exception
    assert "Depth curves" in [s.value for s in at.subheader]
    assert any("one trained model evaluated at several exits" in c.value for c in at.caption)
    chart = next(c for c in at.get("plotly_chart") if c.proto.id and "depth_chart" in c.proto.id)
    assert '"exit depth k' in chart.proto.spec and "sorted-depth-b" in chart.proto.spec
    points = next(d.value for d in at.dataframe if "depth 4" in d.value.columns)
    assert dict(zip(points["line"], points["depth 4"])) == pytest.approx({"sorted-depth": 0.75, "sorted-depth-b": 0.7})


def test_variant_page_filters_wrong_and_truncated(results: Path, monkeypatch):
    at = _app(results, monkeypatch).run()
    at.switch_page("views/variant.py").run()
    assert not at.exception
    cell_box = at.selectbox(key="variant_cell")
    label = next(o for o in cell_box.options if o.startswith("gsm8k · A · ok · run " + RUN1))
    cell_box.set_value(f"{RUN1}/{label.rsplit(' · ', 1)[1]}").run()
    samples = next(d.value for d in at.dataframe if "doc_id" in d.value.columns)
    assert len(samples) == 10
    at.radio(key="variant_filter").set_value("wrong").run()
    wrong = next(d.value for d in at.dataframe if "doc_id" in d.value.columns)
    assert len(wrong) == 2 and (wrong["correct"] == 0).all()
    at.radio(key="variant_filter").set_value("truncated").run()
    trunc = next(d.value for d in at.dataframe if "doc_id" in d.value.columns)
    assert (trunc["finish_reason"] == "length").all() and len(trunc) == 1
    assert len(at.get("plotly_chart")) == 2  # output tokens and latency histograms


def test_variant_page_shows_a_failed_cells_error(results: Path, monkeypatch):
    at = _app(results, monkeypatch).run()
    at.radio(key="view").set_value("all").run()
    at.switch_page("views/variant.py").run()
    box = at.selectbox(key="variant_cell")
    label = next(o for o in box.options if "broken" in o)
    box.set_value(f"{RUN1}/{label.rsplit(' · ', 1)[1]}").run()
    assert any("out of memory" in e.value for e in at.error)
    assert any("No samples" in i.value for i in at.info)


def test_compare_page_and_gate(results: Path, monkeypatch):
    at = _app(results, monkeypatch).run()
    at.switch_page("views/compare.py").run()
    assert not at.exception
    assert at.selectbox(key="compare_a").value == RUN1
    assert at.selectbox(key="compare_b").value == RUN2
    assert at.dataframe  # the side-by-side table
    shown = [e.value for e in (*at.success, *at.error, *at.warning, *at.info)]
    assert any(s.startswith(("Gate verdict", "Gate: unusable input", "Gate: not available")) for s in shown), shown

    st.cache_data.clear()
    monkeypatch.setitem(sys.modules, "harness.gate", None)  # import fails: the page degrades
    at.run()
    assert not at.exception
    assert any("Gate: not available" in i.value for i in at.info)


def test_empty_root_says_how_to_make_results(tmp_path: Path, monkeypatch):
    at = _app(tmp_path / "nothing", monkeypatch)
    at.run()
    assert not at.exception
    assert any("make bench SUITE=reasoning" in i.value for i in at.info)
    for page in ("views/pareto.py", "views/variant.py", "views/compare.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert any("No results yet" in i.value for i in at.info)


def test_older_minor_files_and_other_major_degrade(results: Path, monkeypatch):
    # a cell file from an older MINOR: many columns absent (they read as null)
    run = RunStore(results, "20250101T000000Z-old-0001")
    run.write_run_json({"suite": "synth", "suite_hash": "old"})
    keep = ["run_id", "cell_hash", "suite", "model", "variant", "adapter", "task", "status", "n", "accuracy"]
    table = pa.table(
        {
            "run_id": [run.run_id], "cell_hash": ["oldcell"], "suite": ["synth"], "model": [synthetic.MODEL],
            "variant": ["old"], "adapter": ["baseline"], "task": ["gsm8k"], "status": ["ok"], "n": [4], "accuracy": [0.5],
        }
    ).select(keep).replace_schema_metadata({b"harness_schema_version": b"1.0"})
    run.cells_dir.mkdir(parents=True)
    pq.write_table(table, run.cell_path("oldcell"))
    # a run written by a future MAJOR: left out with its error, the rest still shown
    future = RunStore(results, "20990101T000000Z-future-0001")
    future.write_run_json({"suite": "synth", "suite_hash": "future"})
    future.cells_dir.mkdir(parents=True)
    pq.write_table(table.replace_schema_metadata({b"harness_schema_version": b"2.0"}), future.cell_path("f"))

    at = _app(results, monkeypatch).run()
    assert not at.exception
    assert any("schema version 2.0" in e.value for e in at.error)
    gsm = next(d.value for d in at.dataframe if "accuracy" in d.value.columns)
    assert "old" in set(gsm["variant"])
    for page in ("views/pareto.py", "views/variant.py", "views/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, page
    box = at.selectbox(key="compare_a")
    box.set_value("20250101T000000Z-old-0001").run()
    assert not at.exception


def test_new_run_appears_on_refresh(results: Path, monkeypatch):
    at = _app(results, monkeypatch).run()
    before = sum(len(d.value) for d in at.dataframe if "accuracy" in d.value.columns)
    synthetic.write_run(results, "20260103T000000Z-synth-0003", [
        synthetic.cell("20260103T000000Z-synth-0003", variant="new", adapter="baseline", n=10, n_correct=10),
    ])
    at.run()  # a refresh: the cache key (file mtimes) changed
    after = sum(len(d.value) for d in at.dataframe if "accuracy" in d.value.columns)
    assert after == before + 1


def test_results_are_read_only(results: Path, monkeypatch):
    def snapshot():
        return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in results.rglob("*"))

    before = snapshot()
    at = _app(results, monkeypatch).run()
    for page in ("views/pareto.py", "views/variant.py", "views/compare.py"):
        at.switch_page(page).run()
    assert snapshot() == before


def test_dashboard_imports_no_torch_no_pynvml(results: Path):
    """Every page renders in a fresh interpreter without importing torch or pynvml."""
    code = f"""
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({APP!r}, default_timeout=120).run()
assert not at.exception, at.exception
for page in ("views/pareto.py", "views/variant.py", "views/compare.py"):
    at.switch_page(page).run()
    assert not at.exception, (page, at.exception)
bad = [m for m in ("torch", "pynvml") if m in sys.modules]
assert not bad, f"the dashboard imported {{bad}}"
"""
    env = dict(os.environ, HARNESS_RESULTS=str(results))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]



def test_results_root_from_arguments_then_environment(monkeypatch, tmp_path: Path):
    from dashboard.data import results_root

    monkeypatch.setenv("HARNESS_RESULTS", str(tmp_path / "env"))
    assert results_root(["--results", str(tmp_path / "arg")]) == tmp_path / "arg"
    assert results_root([]) == tmp_path / "env"
    monkeypatch.delenv("HARNESS_RESULTS")
    assert results_root([]) == Path("results").resolve()


def test_agent_cells_on_leaderboard_and_pareto(tmp_path: Path, monkeypatch):
    """τ² agent cells (schema 1.3 columns) appear like any other cell; their cost axes work."""
    root = tmp_path / "results"
    run = "20260103T000000Z-agentic-0001"
    agent = [  # variant: (successes of 4, agent tokens per task, energy per success)
        ("a1", 3, 9000.0, 40.0), ("a2", 2, 4000.0, 30.0), ("a3", 1, 5000.0, 90.0),
    ]
    cells = [
        synthetic.cell(run, variant=v, adapter="baseline", params={"v": v}, task="tau2/mock", n=4, n_correct=k,
                       batch_size=1, suite="agentic", cell_kind="agent", agent_domain="mock", success_rate=k / 4,
                       agent_tokens_per_task=tok, energy_per_correct_j=e, pass_hat_1=k / 4,
                       termination_json='{"user_stop": 4}')
        for v, k, tok, e in agent
    ]
    synthetic.write_run(root, run, cells)
    points = pareto_slice(load(root).cells, "agent_tokens_per_task")
    assert set(points.loc[points["on_front"].astype(bool), "variant"]) == {"a1", "a2"}
    at = _app(root, monkeypatch).run()
    assert not at.exception
    at.switch_page("views/pareto.py").run()
    assert at.selectbox(key="pareto_task").value == "tau2/mock"
    at.selectbox(key="pareto_axis").set_value("agent_tokens_per_task").run()
    assert not at.exception
    assert _front_variants(at) == ("agent_tokens_per_task", {"a1", "a2"})


# ---- issue 19: slices (limits, single variants), compare defaults, labels --------------------------


def _limits_root(tmp_path: Path) -> Path:
    """baseline at 2 samples (perfect), at 8 samples (half right) and on the full split (limit
    null); int8 at 8 samples only."""
    root = tmp_path / "results"
    synthetic.write_run(root, RUN1, [
        synthetic.cell(RUN1, variant="baseline", n=2, n_correct=2, energy_per_token_j=1.0),
        synthetic.cell(RUN1, variant="int8", n=8, n_correct=2, energy_per_token_j=0.5),
    ])
    synthetic.write_run(root, RUN2, [
        synthetic.cell(RUN2, variant="baseline", n=8, n_correct=4, energy_per_token_j=1.0),
        synthetic.cell(RUN2, variant="baseline", n=12, n_correct=6, energy_per_token_j=1.0, limit=None,
                       cell_hash="fullsplit"),
    ])
    return root


def test_best_per_variant_never_mixes_limits(tmp_path: Path, monkeypatch):
    cells = load(_limits_root(tmp_path)).cells
    best = best_per_variant(cells)
    baseline = best[best["variant"] == "baseline"].set_index("limit_text")
    assert sorted(baseline.index) == ["2", "8", "all"]  # the 8-sample cell is not hidden by the 2-sample one
    assert baseline.loc["8", "accuracy"] == pytest.approx(0.5) and baseline.loc["all", "n"] == 12
    at = _app(tmp_path / "results", monkeypatch).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "accuracy" in d.value.columns)
    assert sorted(table.loc[table["variant"] == "baseline", "limit_text"]) == ["2", "8", "all"]
    at.multiselect(key="filter_limit_text").set_value(["8"]).run()
    table = next(d.value for d in at.dataframe if "accuracy" in d.value.columns)
    assert sorted(table["variant"]) == ["baseline", "int8"]
    assert any("limit 8" in c.value for c in at.caption)  # constant within the table: said once


def test_pareto_slices_by_limit_including_the_full_split(tmp_path: Path, monkeypatch):
    at = _app(_limits_root(tmp_path), monkeypatch).run()
    at.switch_page("views/pareto.py").run()
    assert not at.exception
    box = at.selectbox(key="pareto_limit")
    assert list(box.options) == ["2", "8", "all"] and box.value == "all"
    box.set_value("8").run()
    assert _front_variants(at)[1] == {"baseline", "int8"}  # cheaper-but-worse and dearer-but-better
    points = pareto_slice(load(tmp_path / "results").cells, "energy_per_token_j")
    assert set(points.loc[points["limit_text"] == "8", "variant"]) == {"baseline", "int8"}
    assert points.loc[points["limit_text"] == "8", "sole"].eq(False).all()
    assert points.loc[points["limit_text"] != "8", "sole"].all()  # baseline alone at 2 and on the full split


def test_a_single_variant_slice_is_the_only_variant_not_on_the_front(tmp_path: Path, monkeypatch):
    root = tmp_path / "results"
    synthetic.write_run(root, RUN1, [synthetic.cell(RUN1, variant="solo", n=10, n_correct=6)])
    points = pareto_slice(load(root).cells, "energy_per_token_j")
    assert points["sole"].all() and not points["on_front"].any()
    markup = front_markup(points, "energy_per_token_j")
    assert 'data-sole="1"' in markup and 'class="sole-row" data-variant="solo"' in markup
    assert "only variant in this slice" in markup and "front-row" not in markup
    fig = pareto_figure(points, "energy_per_token_j")
    assert not [t for t in fig.data if t.name in ("front", "on the front")]
    at = _app(root, monkeypatch).run()
    at.switch_page("views/pareto.py").run()
    assert not at.exception
    subheaders = [s.value for s in at.subheader]
    assert "Only variant in this slice" in subheaders and "On the front" not in subheaders


def test_pareto_points_are_named_on_hover_not_by_overlapping_labels(results: Path):
    points = pareto_slice(load(results).cells.query("run_id == @RUN1 and task == 'gsm8k'"), "energy_per_token_j")
    fig = pareto_figure(points, "energy_per_token_j")
    scatter = [t for t in fig.data if t.customdata is not None]
    assert scatter and all(t.mode == "markers" and t.text is None for t in scatter)
    assert all("customdata[0]" in t.hovertemplate for t in scatter)  # the variant, on hover
    assert {v for t in scatter for v, *_ in t.customdata} == set(PARETO)


def test_compare_opens_on_two_runs_of_the_same_suite(tmp_path: Path, monkeypatch):
    root = tmp_path / "results"
    other = "20260101T120000Z-other-0001"  # between the two synth runs, another suite
    synthetic.write_run(root, RUN1, [synthetic.cell(RUN1, variant="A", n=10, n_correct=5)])
    synthetic.write_run(root, other, [synthetic.cell(other, variant="A", n=10, n_correct=5, suite="other")],
                        suite="other")
    synthetic.write_run(root, RUN2, [synthetic.cell(RUN2, variant="A", n=10, n_correct=6)])
    from dashboard.tables import default_compare_pair

    assert default_compare_pair(load(root).cells) == (RUN1, RUN2)
    at = _app(root, monkeypatch).run()
    at.switch_page("views/compare.py").run()
    assert not at.exception
    assert (at.selectbox(key="compare_a").value, at.selectbox(key="compare_b").value) == (RUN1, RUN2)
    assert not any("different suites" in w.value for w in at.warning)
    at.selectbox(key="compare_a").set_value(other).run()
    assert any("different suites" in w.value for w in at.warning)


def test_proving_page_plots_pass_at_k_with_k_from_the_sidebar(tmp_path: Path, monkeypatch):
    """Proving cells: pass@k (k picked in the sidebar) against tokens / energy per problem; a
    cot_switch cascade appears at k = n only, as its share proved within the budget."""
    from dashboard.proving import available_k, pass_at_k_points

    root = tmp_path / "results"
    run = "20260104T000000Z-proving-0001"
    common = dict(adapter="baseline", task="minif2f_metamath", n=32, batch_size=8, suite="proving",
                  cell_kind="prove", problems=8, samples_per_doc=4)
    cells = [
        synthetic.cell(run, variant="baseline", params={"v": 1}, n_correct=4, pass_at_1=0.125,
                       pass_at_k_json='{"1": 0.125, "2": 0.2, "3": 0.24, "4": 0.25}', output_tokens_total=2400,
                       **common),
        synthetic.cell(run, variant="cot-switch", params={"v": 2}, n_correct=3, proved_within_budget=0.375,
                       output_tokens_total=1600, **common),
    ]
    synthetic.write_run(root, run, cells)
    loaded = load(root).cells
    assert available_k(loaded) == [1, 2, 3, 4]
    at1 = pass_at_k_points(loaded, 1)
    assert list(at1["variant"]) == ["baseline"] and at1["tokens_per_problem"].tolist() == [300.0]
    at4 = pass_at_k_points(loaded, 4).set_index("variant")
    assert at4.loc["cot-switch", "pass_at_k"] == 0.375 and at4.loc["cot-switch", "kind"] == "within budget"
    at = _app(root, monkeypatch).run()
    at.switch_page("views/proving.py").run()
    assert not at.exception
    assert at.selectbox(key="proving_k").value == 1
    at.selectbox(key="proving_k").set_value(4).run()
    table = next(d.value for d in at.dataframe if "pass_at_k" in d.value.columns)
    assert not at.exception and sorted(table["variant"]) == ["baseline", "cot-switch"]
    at.selectbox(key="proving_cost").set_value("energy_per_problem_j").run()
    assert not at.exception
