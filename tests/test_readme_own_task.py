"""The README's "Your own task" worked example, run as written (issue 19, item 5): its JSONL,
its task module (a TaskSpec registered with register_task, and a grader) and its suite, taken
from the README's code blocks, validate, grade and run end to end on a tiny random model."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]


def readme_blocks(section: str) -> dict[str, str]:
    """The fenced code blocks of one README section, by language (the first of each)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    blocks: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", text[start:end], flags=re.S):
        blocks.setdefault(lang, body)
    return blocks


@pytest.fixture
def capitals(tmp_path, monkeypatch):
    """The README's task module executed (home pointed at tmp_path), its JSONL written where the
    task reads it; the task unregistered afterwards."""
    from harness.tasks import TASKS

    blocks = readme_blocks("Your own task")
    assert {"jsonl", "python", "yaml", "bash"} <= set(blocks)
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    namespace: dict = {"__name__": "capitals_from_readme"}
    exec(compile(blocks["python"], "README.md (harness/tasks/capitals.py)", "exec"), namespace)
    try:
        spec = namespace["TASK"]
        data = Path(spec.data_relpath)
        assert data == tmp_path / "my-data" / "capitals.jsonl"
        data.parent.mkdir(parents=True)
        data.write_text(blocks["jsonl"], encoding="utf-8")
        yield spec, blocks
    finally:
        TASKS.unregister("capitals")


def test_the_task_loads_its_own_file_whatever_the_data_dir_says(capitals, monkeypatch, tmp_path):
    spec, _ = capitals
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "elsewhere"))  # an absolute path ignores it
    docs = spec.load_docs()
    assert [spec.reference(d) for d in docs] == ["Paris", "Tokyo", "Nairobi"]
    monkeypatch.delenv("HARNESS_DATA_DIR")  # unset: still the file, not the dataset hub
    assert spec.load_docs() == docs
    assert spec.prompt(docs[1]) == "What is the capital of Japan? Answer with the city only."


def test_the_grader_and_the_cli_grade_command(capitals):
    from harness.cli import app

    spec, _ = capitals
    assert spec.grade("The capital is paris.", "Paris").correct
    wrong = spec.grade("Lyon, I think", "Paris")
    assert not wrong.correct and wrong.reason == "city not named" and wrong.extracted == "Lyon, I think"
    result = CliRunner().invoke(app, ["grade", "capitals", "-p", "It is Paris.", "-r", "Paris"])
    assert result.exit_code == 0 and "correct (match)" in result.output


def test_the_suite_validates_and_runs_end_to_end(capitals, tmp_path, monkeypatch):
    from harness import models
    from harness.config.suite import describe, load
    from harness.core import refs
    from harness.results import read_cells, read_samples
    from harness.runner import run_suite
    from harness.testing import TinyBase

    _, blocks = capitals
    suite = tmp_path / "capitals.yaml"
    suite.write_text(blocks["yaml"], encoding="utf-8")
    assert describe(load(suite)).startswith("1 model(s) × 2 variant(s) × 1 task(s)")
    tiny = TinyBase()
    monkeypatch.setattr(refs, "resolve", lambda ref: models.ModelRef("test", tiny.canonical_id, "tiny"))
    monkeypatch.setattr(
        models, "load",
        lambda ref, dtype="fp32", device="cpu": models.BaseModel(tiny.model, tiny.tokenizer, tiny.canonical_id, dtype, device),
    )
    report = run_suite(suite, tmp_path / "results", console=Console(file=io.StringIO()))
    assert report.ran == 2 and report.failed == 0
    cells = read_cells(tmp_path / "results")
    assert set(cells["variant"]) == {"baseline", "int8"} and (cells["n"] == 3).all()
    assert (cells["task_version"] == "1").all()
    samples = read_samples(tmp_path / "results")
    assert sorted(samples["reference"].unique()) == ["Nairobi", "Paris", "Tokyo"]
    assert set(samples["grade_reason"]) <= {"match", "city not named"}
    assert yaml.safe_load(blocks["yaml"])["tasks"] == ["capitals"]


def test_make_test_fast_leaves_the_slow_tests_out(tmp_path):
    """``make test-fast`` is ``make test`` with ``-m "not slow"`` (dry run: nothing installs)."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make")
    import os

    # run as a top-level make even when the tests themselves run under ``make test``
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTEST_ARGS")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "test-fast", f"VENV={tmp_path / 'venv'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert '-m pytest -m "not slow"' in out.stdout.strip().splitlines()[-1]
