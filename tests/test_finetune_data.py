"""GLUE fine-tuning data (offline splits, tokenisation, batching), metrics, and measurements."""

from __future__ import annotations

import pytest
import torch

from harness.finetune.data import FINETUNE_TASKS, collate, encode, get_finetune_task, train_order
from harness.finetune.measure import SavedTensorMeter, count_params, serialize_state
from harness.finetune.metrics import accuracy, f1_positive, matthews_corrcoef, task_metrics


@pytest.fixture
def glue_data(monkeypatch):
    """``HARNESS_DATA_DIR`` as set, else ``../shared/data`` (skips when neither has GLUE)."""
    import os
    from pathlib import Path

    from tests.conftest import SHARED_DATA

    root = Path(os.environ.get("HARNESS_DATA_DIR") or SHARED_DATA)
    if not (root / "glue").is_dir():
        pytest.skip(f"offline GLUE data not found under {root}")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(root))
    return root


def test_metrics_match_sklearn_on_known_cases():
    metrics = pytest.importorskip("sklearn.metrics")
    pred = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1]
    ref = [1, 0, 0, 1, 0, 1, 1, 0, 0, 1]
    assert accuracy(pred, ref) == pytest.approx(metrics.accuracy_score(ref, pred))
    assert f1_positive(pred, ref) == pytest.approx(metrics.f1_score(ref, pred))
    assert matthews_corrcoef(pred, ref) == pytest.approx(metrics.matthews_corrcoef(ref, pred))
    three = [0, 1, 2, 2, 1, 0, 2]
    assert matthews_corrcoef(three, [0, 1, 1, 2, 1, 2, 2]) == pytest.approx(
        metrics.matthews_corrcoef([0, 1, 1, 2, 1, 2, 2], three))


def test_metric_edge_cases():
    assert matthews_corrcoef([1, 1, 1], [0, 1, 0]) == 0.0  # constant predictions
    assert f1_positive([0, 0], [1, 1]) == 0.0
    assert task_metrics([], [])["accuracy"] is None
    with pytest.raises(ValueError, match="differ in length"):
        accuracy([1], [1, 0])


def test_unknown_task_suggests_and_names_missing_train_splits():
    with pytest.raises(KeyError, match="did you mean 'sst2'"):
        get_finetune_task("sst-2")
    with pytest.raises(KeyError, match="no offline train split"):
        get_finetune_task("qnli")


@pytest.mark.parametrize("name", sorted(FINETUNE_TASKS))
def test_offline_splits_load_with_their_fields(name, glue_data):
    task = get_finetune_task(name)
    train, val = task.load("train"), task.load("validation")
    expected = {"sst2": (10000, 872), "mrpc": (3668, 408), "rte": (2490, 277), "cola": (8551, 1043)}[name]
    assert (len(train), len(val)) == expected
    assert {int(r["label"]) for r in val} == set(range(task.num_labels))


def test_missing_data_dir_file_is_a_data_error(tmp_path, monkeypatch):
    from harness.tasks import DataError

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="glue/rte/train.jsonl"):
        get_finetune_task("rte").load("train")


def test_encode_pairs_with_token_types_and_collate_pads_right():
    from harness.finetune.encoder import embedded_encoder_dir
    from harness.models import ModelError

    try:
        folder = embedded_encoder_dir()
    except ModelError as exc:
        pytest.skip(str(exc))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    rows = [{"sentence1": "A man sleeps.", "sentence2": "Nobody is awake here at all.", "label": 1},
            {"sentence1": "Short.", "sentence2": "Also short.", "label": 0}]
    enc = encode(get_finetune_task("rte"), rows, tok, max_length=8)
    assert max(len(x) for x in enc.input_ids) == 8  # truncated
    assert set(enc.token_type_ids[1]) == {0, 1}  # second sentence marked
    batch = collate(enc, [0, 1], tok.pad_token_id, task_id=3)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 8)
    n = len(enc.input_ids[1])
    assert batch["attention_mask"][1, :n].all() and not batch["attention_mask"][1, n:].any()
    assert batch["labels"].tolist() == [1, 0] and batch["task_ids"].tolist() == [3, 3]


def test_train_order_is_seeded_and_covers_epochs():
    a, b = train_order(10, 25, seed=1), train_order(10, 25, seed=1)
    assert a == b and a != train_order(10, 25, seed=2)
    assert sorted(a[:10]) == list(range(10)) and sorted(a[10:20]) == list(range(10))


def test_holdout_rows_never_reach_training():
    from harness.finetune.train import TrainData

    class Tok:
        pad_token_id = 0

        def __call__(self, first, second=None, truncation=True, max_length=8):
            return {"input_ids": [[1, 2 + len(x) % 5] for x in first]}

    task = get_finetune_task("sst2")
    rows = {"sst2": [{"sentence": f"s{i}", "label": i % 2, "idx": i} for i in range(40)]}
    data = TrainData([task], rows, Tok(), max_length=8, holdout=10)
    held = set(data.holdout_set().doc_ids)
    assert len(held) == 10
    seen = set()
    for batch in data.stream(20, 4, seed=0):
        assert batch["input_ids"].shape[0] == 4
    assert not held & {i for i in data.pool["sst2"]}
    seen |= set(data.pool["sst2"])
    assert len(seen) == 30


def test_saved_tensor_meter_counts_activations_not_parameters():
    lin = torch.nn.Linear(100, 100)
    x = torch.randn(8, 100)
    meter = SavedTensorMeter(lin)
    with meter.measure():
        y = torch.relu(lin(x)).sum()  # linear saves x (input, 3,200 B) and the weight (excluded); relu its output
    assert meter.last_bytes == 8 * 100 * 4 * 2
    with meter.measure(), torch.no_grad():
        lin(x)
    assert meter.last_bytes == 0 and meter.peak_bytes == 8 * 100 * 4 * 2
    y.backward()


def test_count_params_and_serialized_size():
    lin = torch.nn.Linear(10, 4)
    lin.bias.requires_grad_(False)
    assert count_params(lin) == (40, 44)
    assert len(serialize_state({"w": lin.weight})) >= 40 * 4
