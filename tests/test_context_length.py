"""A cell whose token cap (or longest prompt + cap) exceeds the model's context fails before its
warm-up and measured window, with a one-line error naming the context length (issue 19, item 3)."""

from __future__ import annotations

import io

import pytest
import yaml
from rich.console import Console

from harness.results import read_cells


@pytest.fixture
def tiny_run(tmp_path, monkeypatch, data_dir):
    """run_suite on the tiny random Llama (context 4,096 tokens); decoding is forbidden."""
    from harness import models, variant
    from harness.core import refs
    from harness.runner import run_suite
    from harness.testing import TinyBase

    tiny = TinyBase()
    monkeypatch.setattr(refs, "resolve", lambda ref: models.ModelRef("test", tiny.canonical_id, "tiny"))
    monkeypatch.setattr(
        models, "load",
        lambda ref, dtype="fp32", device="cpu": models.BaseModel(tiny.model, tiny.tokenizer, tiny.canonical_id, dtype, device),
    )
    monkeypatch.setattr(variant, "generate", lambda *a, **k: pytest.fail("decoded a cell that cannot fit"))

    def run(max_new_tokens: int):
        path = tmp_path / "ctx.yaml"
        path.write_text(yaml.safe_dump({
            "name": "ctx", "models": ["embedded"], "tasks": ["gsm8k"],
            "defaults": {"limit": 2, "batch_size": 2, "max_new_tokens": max_new_tokens, "device": "cpu"},
            "variants": [{"name": "baseline", "adapter": "baseline"}],
        }))
        report = run_suite(path, tmp_path / "results", console=Console(file=io.StringIO()))
        assert report.failed == 1
        error = read_cells(report.run_dir)["error"].iloc[0]
        assert "\n" not in error
        return error

    return run


def test_a_cap_above_the_context_is_an_error_naming_it(tiny_run):
    error = tiny_run(5000)
    assert "ContextLengthError: max_new_tokens 5,000 is not below the context length of " in error
    assert "(4,096 tokens)" in error and "tiny-llama" in error


def test_prompt_plus_cap_above_the_context_is_an_error_naming_both(tiny_run):
    error = tiny_run(4000)  # below 4,096 alone; a gsm8k prompt is hundreds of characters (= tokens here)
    assert "ContextLengthError: gsm8k doc 0: prompt " in error
    assert "+ max_new_tokens 4,000 = " in error and "exceeds the context length of" in error
    assert "(4,096 tokens)" in error
