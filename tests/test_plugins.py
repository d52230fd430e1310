"""Extension proved, not described: a cell kind and an executor registered from this test file
alone (no edit under ``harness/``) run a suite section through validation, expansion, the
executor, the store, resume and the summary, exactly as the built-in kinds do."""

from __future__ import annotations

import pytest
from pydantic import Field
from rich.console import Console

from harness.config.fields import Strict
from harness.config.suite import SuiteError, load
from harness.core.cell import KINDS, Cell, CellKind, CellOutcome
from harness.core.rows import cell_metrics, sample_row
from harness.executors import EXECUTORS, Executor
from harness.executors.worker import run_group
from harness.results import read_cells, read_samples, summary_table
from harness.runner import run_suite

RUNS: list[str] = []  # cell hashes the dummy kind ran, in order
EVENTS: list[str] = []  # event types the dummy executor forwarded


class DummyVariant(Strict):
    name: str
    adapter: str = "echo"
    dtype: str = "fp32"
    shout: bool = False


class DummySection(Strict):
    models: list[str] = Field(min_length=1)
    words: list[str] = Field(min_length=1)
    variants: list[DummyVariant] = Field(min_length=1)


class DummyBase:
    model = None
    canonical_id = "dummy:echo@1"
    load_time_s = 0.0


class DummyKind(CellKind):
    """Echo each word (upper-case when ``shout``); a sample is correct when it echoes the word."""

    section = "dummy"
    Section = DummySection

    def check(self, suite, section, source):
        for i, word in enumerate(section.words):
            if not word.isalpha():
                raise SuiteError(f"{source}: dummy.words[{i}]: not a word: {word!r}")

    def expand(self, suite, section, limit, model_ids):
        return [
            Cell(suite=suite.name, model_ref=ref, model_id=f"dummy:{ref}", variant=v, params={"shout": v.shout},
                 task=f"echo/{word}", task_version="1", limit=limit, batch_size=1, max_new_tokens=0, seed=0,
                 repeat=0, device="cpu", kind="dummy", settings={"word": word},
                 identity_extra={"kind": "dummy", "word": word})
            for ref in section.models for v in section.variants for word in section.words
        ]

    def load_base(self, ref, dtype, device):
        return DummyBase()

    def run(self, cell, base, telemetry, on_progress=None, files=None):
        RUNS.append(cell.cell_hash)
        word = cell.settings["word"]
        with telemetry.window(cell.cell_hash) as window:
            out = word.upper() if cell.params["shout"] else word
        samples = [sample_row(cell, 0, word, output_text=out, reference=word, correct=float(out == word),
                              output_tokens=1, finish_reason="stop", latency_s=0.001)]
        seen = (files or {}).get("dummy/seen.txt", b"")
        return CellOutcome(
            cell_row={**cell_metrics(samples, 0.001), **window.result.as_columns(), "param_bytes": None},
            sample_rows=samples,
            files={"dummy/seen.txt": seen + word.encode() + b"\n"},
        )

    def reused_files(self, cell):
        return ["dummy/seen.txt"]


class InlineExecutor(Executor):
    """Every group through the shared worker, in this process, without progress bars."""

    def run(self, groups, options, sink, console):
        for group in groups:
            run_group(group, options, lambda event: (EVENTS.append(type(event).__name__), sink(event)))


@pytest.fixture
def plugins():
    KINDS.register("dummy")(DummyKind)
    EXECUTORS.register("inline-test")(InlineExecutor)
    RUNS.clear()
    EVENTS.clear()
    yield
    KINDS.unregister("dummy")
    EXECUTORS.unregister("inline-test")


SUITE = """
name: plug
dummy:
  models: [m1]
  words: [alpha, beta]
  variants:
    - {name: plain}
    - {name: loud, shout: true}
"""


def test_a_kind_and_an_executor_from_tests_run_resume_and_summarise(plugins, tmp_path):
    path = tmp_path / "plug.yaml"
    path.write_text(SUITE)
    console = Console(record=True, width=120)
    report = run_suite(path, tmp_path / "results", console=console, executor="inline-test")
    assert (report.total, report.ran, report.failed) == (4, 4, 0)
    assert len(RUNS) == 4 and EVENTS.count("CellDone") == 4 and "Machine" in EVENTS
    cells = read_cells(report.run_dir).sort_values(["variant", "task"])
    assert set(cells["cell_kind"]) == {"dummy"} and set(cells["status"]) == {"ok"}
    assert cells["accuracy"].tolist() == [0.0, 0.0, 1.0, 1.0]  # loud echoes are wrong, plain ones right
    assert cells["provenance_json"].notna().all() and cells["hardware_id"].notna().all()
    assert len(read_samples(report.run_dir)) == 4
    assert (report.run_dir / "dummy/seen.txt").read_text().split() == ["alpha", "beta", "alpha", "beta"]
    assert "plain" in console.export_text() and summary_table(cells) is not None

    RUNS.clear()
    again = run_suite(path, tmp_path / "results", console=Console(record=True), executor="inline-test")
    assert (again.run_id, again.skipped, again.ran) == (report.run_id, 4, 0) and RUNS == []


def test_a_test_kind_section_is_validated_by_its_own_model_and_checks(plugins, tmp_path):
    path = tmp_path / "plug.yaml"
    path.write_text(SUITE.replace("words: [alpha, beta]", "wrods: [alpha]"))
    with pytest.raises(SuiteError, match=r"dummy\.wrods: unknown field; did you mean 'words'\?"):
        load(path)
    path.write_text(SUITE.replace("beta", "b3ta"))
    with pytest.raises(SuiteError, match=r"dummy\.words\[1\]: not a word"):
        load(path)


def test_without_the_plugin_the_section_is_an_unknown_field(tmp_path):
    path = tmp_path / "plug.yaml"
    path.write_text(SUITE)
    with pytest.raises(SuiteError, match="dummy: unknown field"):
        load(path)
