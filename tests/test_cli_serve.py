"""``python -m harness serve`` checks its flags, device and port before loading any model."""

from __future__ import annotations

import socket

import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if serve gets as far as building backends (loading the model)."""
    import harness.serve.backend as backend

    def refuse(*args, **kwargs):
        raise AssertionError("serve loaded the model before checking its flags")

    monkeypatch.setattr(backend, "suite_backends", refuse)


def _serve(*args: str):
    return CliRunner().invoke(app, ["serve", "agentic", "--variant", "baseline", "--no-telemetry", *args])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "tpu"], "use auto, cpu, cuda or cuda:N"),
        (["--max-tokens", "0"], "--max-tokens must be a positive integer"),
        (["--max-tokens", "-3"], "--max-tokens must be a positive integer"),
        (["--max-prompt-tokens", "-5"], "--max-prompt-tokens must be a positive integer"),
        (["--max-prompt-tokens", "0"], "--max-prompt-tokens must be a positive integer"),
        (["--log-level", "loud"], "--log-level: unknown log level 'loud'"),
    ],
)
def test_serve_rejects_bad_flags_with_rc_2(no_model_load, args, message):
    result = _serve(*args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_serve_cuda_without_gpu_is_rc_2(no_model_load, device):
    result = _serve("--device", device)
    assert result.exit_code == 2 and "torch sees no CUDA device" in " ".join(result.output.split())


def test_serve_port_in_use_fails_before_the_model_loads(no_model_load):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _serve("--port", str(port))
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(result.output.split())


def _serve_suite(suite: str, *args: str):
    return CliRunner().invoke(app, ["serve", suite, "--no-telemetry", "--port", "0", *args])


def test_serve_variant_that_calibrates_without_calibration_task_is_rc_2(no_model_load):
    result = _serve_suite("reasoning-full", "--variant", "baseline", "--variant", "effort-medium")
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "variant 'effort-medium' needs --calibration-task TASK" in message
    assert result.exception is None or isinstance(result.exception, SystemExit)
    result = _serve_suite("reasoning-full", "--variant", "effort-medium", "--calibration-task", "gsm8kk")
    assert result.exit_code == 2 and "unknown task 'gsm8kk'" in " ".join(result.output.split())


def test_serve_with_calibration_task_calibrates_then_serves(monkeypatch, data_dir):
    import uvicorn

    import harness.serve.app as app_mod
    from harness import models
    from harness.adapters.think_budget import SYSTEM_PROMPTS
    from harness.testing import TinyBase

    monkeypatch.setattr(models, "load", lambda ref, dtype, device: TinyBase(seed=9))
    served = {}
    real_create_app = app_mod.create_app
    monkeypatch.setattr(app_mod, "create_app", lambda backends, **kw: served.update(backends) or real_create_app(backends, **kw))
    monkeypatch.setattr(uvicorn, "run", lambda application, **kw: served.setdefault("ran", True))
    result = _serve_suite("reasoning-full", "--variant", "effort-low", "--calibration-task", "gsm8k", "--max-tokens", "48")
    assert result.exit_code == 0, result.output
    assert served.pop("ran") and list(served) == ["effort-low"]
    backend = served["effort-low"]
    budget = backend.policy_factory().plan.reasoning_budget
    assert "effort-low: calibrated on gsm8k docs[1315:1319]" in result.output and f"budget {budget}" in result.output
    assert backend.prompt_transform.system_prompt == SYSTEM_PROMPTS["low"]
