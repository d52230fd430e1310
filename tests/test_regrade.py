"""``harness grade --run``: each cell kind re-grades its own rows; a kind whose grades cannot be
recomputed from a stored row is named, never crashes the command."""

from __future__ import annotations

from typer.testing import CliRunner

from harness.cli import app
from harness.results import RunStore


def _cell(cell_hash: str, kind: str, task: str) -> dict:
    return {"cell_hash": cell_hash, "status": "ok", "cell_kind": kind, "task": task, "variant": "v", "n": 2}


def _sample(doc_id: int, task: str, **cols) -> dict:
    return {"model": "m", "variant": "v", "task": task, "doc_id": doc_id, "prompt_text": "p", **cols}


def _write(tmp_path, finetune_correct=(1.0, 0.0)):
    store = RunStore(tmp_path, "run-1")
    store.write_run_json({"suite": "s", "suite_hash": "h"})
    # fine-tuning rows: label names as text, label ids as extracted answer and reference
    store.write_cell(_cell("f" * 16, "finetune", "sst2"), [
        _sample(0, "sst2", output_text="positive", extracted_answer="1", reference="1", correct=finetune_correct[0]),
        _sample(1, "sst2", output_text="positive", extracted_answer="1", reference="0", correct=finetune_correct[1]),
    ])
    # agent rows: τ² rewards, not recomputable from the row
    store.write_cell(_cell("a" * 16, "agent", "tau2/mock"), [
        _sample(0, "tau2/mock", output_text=None, extracted_answer="user_stop", reference=None, correct=1.0),
    ])
    # an eval generation row, graded by the task's grader
    store.write_cell(_cell("e" * 16, "eval", "gsm8k"), [
        _sample(0, "gsm8k", output_text="so 18. #### 18", extracted_answer="18", reference="18", correct=1.0),
    ])
    return store.run_dir


def test_each_kind_regrades_its_own_rows_and_agent_rows_are_named_not_regradable(tmp_path):
    out = CliRunner().invoke(app, ["grade", "--run", str(_write(tmp_path))])
    assert out.exit_code == 0, out.output
    assert "re-graded 3 of 4 samples: 0 disagreement(s)" in out.output
    assert "1 sample(s) of agent cells not re-gradable" in out.output


def test_a_wrong_stored_finetune_grade_is_a_disagreement(tmp_path):
    out = CliRunner().invoke(app, ["grade", "--run", str(_write(tmp_path, finetune_correct=(0.0, 0.0)))])
    assert out.exit_code == 1 and "1 disagreement(s)" in out.output and "sst2 doc 0" in out.output
