"""Errors that help (issue 19, item 3): a run that fails its checks leaves no run folder; off a
terminal, errors are single plain lines (no wrapping, no boxes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.config.suite import SuiteError
from harness.runner import run_suite
from harness.tasks import DataError

REPO = Path(__file__).resolve().parents[1]


def _suite(tmp_path: Path, **defaults) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "s", "models": ["embedded"], "tasks": ["gsm8k"],
        "defaults": {"limit": 2, "device": "cpu", **defaults},
        "variants": [{"name": "baseline", "adapter": "baseline"}],
    }))
    return path


@pytest.mark.parametrize("case", ["missing data", "device", "executor"])
def test_a_run_failing_its_checks_leaves_no_run_folder(case, tmp_path, monkeypatch):
    from harness import models

    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    root = tmp_path / "results"
    kwargs = {}
    if case == "missing data":
        monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
        (tmp_path / "empty").mkdir()
        error = DataError
    elif case == "device":
        kwargs["device"] = "tpu"
        error = SuiteError
    else:
        kwargs["executor"] = "nowhere"
        error = SuiteError
    with pytest.raises(error):
        run_suite(_suite(tmp_path), root, **kwargs)
    assert not root.exists() or not any(root.rglob("*")), sorted(root.rglob("*"))


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_errors_are_single_unwrapped_lines_off_a_terminal(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / ("another-long-folder-name-" * 4)
    deep.mkdir(parents=True)
    path = deep / "typo.yaml"
    path.write_text("name: typo\nmodels: [embedded]\ntasks: [gsm8k]\ndefaults: {limt: 2}\n"
                    "variants: [{name: baseline, adapter: baseline}]\n")
    result = _cli("validate", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) > 200  # longer than the 200-column console, not wrapped
    assert lines[0].endswith("defaults.limt: unknown field; did you mean 'limit'?")


def test_usage_errors_are_plain_off_a_terminal():
    result = _cli("run")
    assert result.returncode == 2
    assert "Missing argument" in result.stderr and "╭" not in result.stderr and "│" not in result.stderr


def test_a_suite_path_without_its_extension_resolves():
    from harness.config.suite import resolve_path

    assert resolve_path("suites/smoke") == Path("suites/smoke.yaml")  # was suites/suites/smoke.yaml
    assert resolve_path("smoke") == Path("suites/smoke.yaml")
    assert resolve_path("my/own.yml") == Path("my/own.yml")


def test_summary_of_a_root_without_runs_says_what_a_root_is(tmp_path):
    result = _cli("summary", str(tmp_path))
    assert result.returncode == 2
    assert "holds runs/<run_id>/" in result.stderr and "harness run smoke --results" in result.stderr


def test_validate_lines_are_unwrapped_in_a_log():
    result = _cli("validate", "suites/agentic.yaml")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) > 160 and lines[0].startswith("ok suites/agentic.yaml: ")
