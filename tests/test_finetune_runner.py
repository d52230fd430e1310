"""Training cells end to end through the runner: a tiny BERT saved as a local folder (with the
embedded MiniLM tokenizer), real GLUE data, resume, summary and a suite mixing both cell kinds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.config import suite as S
from harness.cli import app
from harness.results import read_cells, read_samples
from harness.runner import run_suite


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A 2-block BERT (hidden 32) with random weights and MiniLM's tokenizer, saved like a hub model."""
    from transformers import BertConfig, BertModel

    from harness.finetune.encoder import embedded_encoder_dir
    from harness.models import ModelError

    try:
        source = embedded_encoder_dir()
    except ModelError as exc:
        pytest.skip(str(exc))
    folder = tmp_path_factory.mktemp("enc") / "tiny-bert"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


def suite_data(folder: Path) -> dict:
    return {
        "name": "ft-e2e",
        "defaults": {"device": "cpu"},
        "finetune": {
            "models": [str(folder)],
            "tasks": ["sst2", "rte"],
            "defaults": {"steps": 3, "batch_size": 4, "learning_rate": 1e-3, "max_length": 32, "eval_limit": 12,
                         "eval_batch_size": 8},
            "per_task": {"rte": {"max_length": 48}},
            "variants": [
                {"name": "full", "adapter": "full_ft", "learning_rate": 1e-4},
                {"name": "lora", "adapter": "lora", "params": {"r": 2}},
                {"name": "depths", "adapter": "sorted_depth", "params": {"depths": [1, 2]}},
                {"name": "search", "adapter": "peft_search",
                 "params": {"ranks": [1, 2], "module_sets": ["qv"], "layer_sets": ["all"], "n_trials": 2,
                            "min_steps": 1, "holdout_docs": 10}},
            ],
        },
    }


@pytest.fixture(scope="module")
def first_run(tiny_folder, tmp_path_factory):
    import os

    from tests.conftest import SHARED_DATA

    data = Path(os.environ.get("HARNESS_DATA_DIR") or SHARED_DATA)
    if not data.is_dir():
        pytest.skip("offline data not found (set HARNESS_DATA_DIR)")
    os.environ["HARNESS_DATA_DIR"] = str(data)
    path = tmp_path_factory.mktemp("suite") / "ft.yaml"
    path.write_text(yaml.safe_dump(suite_data(tiny_folder)))
    root = tmp_path_factory.mktemp("results")
    return path, root, run_suite(path, root)


def test_training_cells_write_their_columns(first_run):
    _, root, report = first_run
    assert report.total == 8 and report.ran == 8 and report.failed == 0
    cells = read_cells(root).set_index(["variant", "task"])
    assert (cells["status"] == "ok").all() and (cells["cell_kind"] == "finetune").all()
    assert (cells["n"] == 12).all() and (cells["limit"] == 12).all()
    for col in ("trainable_params", "trainable_share", "saved_activation_bytes", "peak_rss_bytes", "train_time_s",
                "final_train_loss", "adapter_bytes", "switch_time_s", "accuracy", "metric_f1", "metric_mcc", "task_metric_value"):
        assert cells[col].notna().all(), col
    assert cells["train_energy_source"].isin(["rapl", "codecarbon_estimate", "unavailable", "nvml_counter",
                                              "nvml_power_integral"]).all()
    assert cells.loc[("full", "sst2"), "trainable_share"] == 1.0
    assert cells.loc[("lora", "sst2"), "trainable_share"] < 0.05
    assert cells.loc[("lora", "sst2"), "adapter_bytes"] < cells.loc[("full", "sst2"), "adapter_bytes"] / 10
    assert (cells.xs("sst2", level="task")["steps"].drop("search") == 3).all()
    assert cells.loc[("search", "sst2"), "steps"] == 2 * 1 + 1 * 1
    trials = json.loads(cells.loc[("search", "sst2"), "technique_json"])["trials"]
    assert len(trials) == 2 and any(t["pareto"] for t in trials)
    assert {"counter_accuracy_depth_1", "counter_accuracy_depth_2"} <= set(cells.columns)
    assert cells.loc[("depths", "sst2"), "counter_accuracy_depth_2"] == cells.loc[("depths", "sst2"), "accuracy"]
    assert json.loads(cells.loc[("lora", "rte"), "train_config_json"])["max_length"] == 48
    assert cells.loc[("full", "rte"), "batch_size"] == 4
    samples = read_samples(root)
    assert len(samples) == 8 * 12
    one = samples[samples["cell_hash"] == cells.loc[("full", "sst2"), "cell_hash"]]
    assert one["correct"].mean() == pytest.approx(cells.loc[("full", "sst2"), "accuracy"])


def test_rerun_resumes_and_summary_shows_training_cells(first_run, monkeypatch):
    from harness.kinds.finetune import FinetuneKind

    path, root, report = first_run
    monkeypatch.setattr(FinetuneKind, "load_base", lambda *a, **k: pytest.fail("loaded on a no-op resume"))
    again = run_suite(path, root)
    assert again.run_id == report.run_id and again.ran == 0 and again.skipped == 8
    result = CliRunner().invoke(app, ["summary", str(root)])
    assert result.exit_code == 0, result.output
    assert "trainable" in result.output and "lora" in result.output


def test_a_suite_mixing_eval_and_training_cells_validates_and_expands(tiny_folder, tmp_path):
    data = {
        "name": "mixed",
        "models": ["embedded"],
        "tasks": ["gsm8k"],
        "variants": [{"name": "baseline", "adapter": "baseline"}],
        **{k: v for k, v in suite_data(tiny_folder).items() if k == "finetune"},
    }
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(data))
    suite = S.load(path)
    cells = S.expand(suite, model_ids={"embedded": "embedded:test@0", str(tiny_folder): "local:tiny@0"})
    kinds = [c.kind for c in cells]
    assert kinds.count("eval") == 1 and kinds.count("finetune") == 8
    # the finetune section does not change the eval cells' identity (nor the eval-only suite's hash)
    eval_only = S.parse({k: v for k, v in data.items() if k != "finetune"})
    (eval_cell,) = S.expand(eval_only, model_ids={"embedded": "embedded:test@0"})
    assert eval_cell.cell_hash == cells[0].cell_hash
    assert "finetune" not in eval_only.canonical()
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "finetune: 1 encoder(s) × 4 variant(s) × 2 task(s)" in " ".join(result.output.split())


def test_dashboard_pages_render_training_cells(first_run, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    _, root, _ = first_run
    monkeypatch.setenv("HARNESS_RESULTS", str(root))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    for page in ("views/pareto.py", "views/variant.py", "views/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
    at.switch_page("views/pareto.py").run()
    # the sorted_depth cell's per-depth accuracies: one curve, depths 1 and 2, the deepest = its accuracy
    assert "Depth curves" in [s.value for s in at.subheader]
    points = next(d.value for d in at.dataframe if "depth 2" in d.value.columns).set_index("line")
    task = at.selectbox(key="pareto_task").value
    assert points.loc["depths", "depth 2"] == pytest.approx(read_cells(root).set_index(["variant", "task"]).loc[("depths", task), "accuracy"])
    for axis in ("trainable_params", "saved_activation_bytes", "train_time_s", "train_energy_j"):
        at.selectbox(key="pareto_axis").set_value(axis).run()
        assert not at.exception, (axis, at.exception)


def test_ls_lists_the_finetune_adapters():
    result = CliRunner().invoke(app, ["ls"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "fine-tuning adapters" in text and "peft_search" in text and "2301.12132" in text


def _ft_suite(**finetune) -> dict:
    section = {"models": ["minilm-l6"], "tasks": ["sst2"], "variants": [{"name": "full", "adapter": "full_ft"}]}
    section.update(finetune)
    return {"name": "ft", "finetune": section}


@pytest.mark.parametrize(
    "data, text",
    [
        (_ft_suite(variants=[{"name": "x", "adapter": "lorra"}]), "finetune.variants[0].adapter: unknown fine-tuning adapter 'lorra'; did you mean 'lora'"),
        (_ft_suite(variants=[{"name": "x", "adapter": "lora", "params": {"rank": 2}}]), "finetune.variants[0].params.rank: unknown parameter"),
        (_ft_suite(tasks=["qnli"]), "finetune.tasks[0]: unknown fine-tuning task 'qnli'"),
        (_ft_suite(per_task={"sts": {"steps": 2}}), "finetune.per_task.sts"),
        (_ft_suite(models=["minilm-l5"]), "did you mean 'minilm-l6'"),
        (_ft_suite(variants=[{"name": "x", "adapter": "full_ft", "dtype": "bf16"}]), "fp32 only"),
        (_ft_suite(variants=[{"name": "x", "adapter": "mhr", "params": {"co_tasks": ["qnli"]}}]), "finetune.variants[0].params"),
        (_ft_suite(variants=[{"name": "a", "adapter": "full_ft"}, {"name": "b", "adapter": "full_ft"}]), "same adapter, params and settings"),
        ({**_ft_suite(), "models": ["embedded"], "tasks": ["gsm8k"], "variants": [{"name": "full", "adapter": "baseline"}]}, "unique"),
        ({"name": "empty"}, "finetune section"),
    ],
)
def test_invalid_finetune_sections_give_one_line_errors(tmp_path, data, text):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(S.SuiteError) as info:
        S.load(path)
    assert text in str(info.value) and "\n" not in str(info.value)


def test_summary_of_mixed_cells_shows_both_tables():
    import io

    import pandas as pd
    from rich.console import Console

    from harness.results import summary_table

    rows = pd.DataFrame([
        {"run_id": "r", "task": "gsm8k", "variant": "baseline", "status": "ok", "n": 4, "accuracy": 0.5,
         "energy_per_sample_j": 2.0, "model": "m", "hardware_id": "h", "batch_size": 1, "cell_kind": "eval"},
        {"run_id": "r", "task": "sst2", "variant": "lora-r8", "status": "ok", "n": 872, "accuracy": 0.8,
         "task_metric": "accuracy", "task_metric_value": 0.8, "trainable_params": 74_498, "trainable_share": 0.0033,
         "saved_activation_bytes": 2.1e8, "train_time_s": 31.0, "train_energy_j": 900.0,
         "train_energy_source": "codecarbon_estimate", "steps": 60, "final_train_loss": 0.41, "adapter_bytes": 3e5,
         "switch_time_s": 0.002, "model": "e", "hardware_id": "h", "batch_size": 32, "cell_kind": "finetune"},
        {"run_id": "r", "task": "cola", "variant": "full_ft", "status": "ok", "n": 1043, "accuracy": 0.7,
         "task_metric": "mcc", "task_metric_value": 0.31, "trainable_params": 22_714_000, "trainable_share": 1.0,
         "model": "e", "hardware_id": "h", "batch_size": 32, "cell_kind": "finetune"},
    ])
    out = io.StringIO()
    Console(file=out, width=250).print(summary_table(rows))
    text = out.getvalue()
    eval_row = next(line for line in text.splitlines() if "gsm8k" in line)
    assert "baseline" in eval_row and "50.0" in eval_row and "2 J" in eval_row  # the evaluation table (J/sample)
    assert "lora-r8" in text and "74.5k (0.33%)" in text and "210 MB" in text and "mcc 0.310" in text
