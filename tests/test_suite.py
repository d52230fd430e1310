"""Suite validation (before anything loads), expansion and cell hashing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.config import suite as S

REPO = Path(__file__).resolve().parents[1]
IDS = {"embedded": "embedded:test@000"}


def _write(tmp_path, data) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _base():
    return {
        "name": "t",
        "models": ["embedded"],
        "tasks": ["gsm8k"],
        "variants": [{"name": "a", "adapter": "baseline"}],
    }


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "suites").glob("*.yaml")))
def test_shipped_suites_validate(name):
    S.load(REPO / "suites" / f"{name}.yaml")


def test_adapter_typo_names_file_key_and_closest(tmp_path):
    data = _base()
    data["variants"].append({"name": "b", "adapter": "think_budgt"})
    path = _write(tmp_path, data)
    with pytest.raises(S.SuiteError) as info:
        S.load(path)
    msg = str(info.value)
    assert str(path) in msg and "variants[1].adapter" in msg and "'think_budget'" in msg
    assert "\n" not in msg


def test_typo_fails_before_any_model_loads(tmp_path, monkeypatch):
    from harness import models
    from harness.runner import run_suite

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "load", boom)
    data = _base()
    data["variants"][0]["adapter"] = "baselin"
    with pytest.raises(S.SuiteError, match="did you mean 'baseline'"):
        run_suite(_write(tmp_path, data), tmp_path / "results")


@pytest.mark.parametrize(
    "mutate, key, text",
    [
        (lambda d: d.update(limt=3), "limt", "unknown field"),
        (lambda d: d["variants"][0].update(params={"max_reasoning_tokens": 5}), "variants[0].params.max_reasoning_tokens", "unknown parameter"),
        (lambda d: d["variants"].append({"name": "x", "adapter": "think_budget", "params": {"max_reasoning_tokens": 0}}), "variants[1].params.max_reasoning_tokens", "greater than"),
        (lambda d: d.update(tasks=["gsm8"]), "tasks[0]", "gsm8k"),
        (lambda d: d["variants"][0].update(dtype="fp8"), "variants[0].dtype", "unknown dtype"),
        (lambda d: d["variants"].append({"name": "a", "adapter": "int8"}), "(top level)", "unique"),
        (lambda d: d.update(defaults={"batch_size": 0}), "defaults.batch_size", "greater than"),
    ],
)
def test_invalid_suites_give_one_line_errors(tmp_path, mutate, key, text):
    data = _base()
    mutate(data)
    with pytest.raises(S.SuiteError) as info:
        S.load(_write(tmp_path, data))
    assert key in str(info.value) and text in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(S.SuiteError, match="not found"):
        S.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(S.SuiteError, match="not valid YAML"):
        S.load(bad)


def test_expand_and_hashes():
    suite = S.parse(
        {
            **_base(),
            "tasks": ["gsm8k", "math500"],
            "defaults": {"limit": 4, "batch_size": 2, "repeats": 2},
            "variants": [
                {"name": "a", "adapter": "baseline"},
                {"name": "b", "adapter": "think_budget", "params": {"max_reasoning_tokens": 8}},
            ],
        }
    )
    cells = S.expand(suite, model_ids=IDS)
    assert len(cells) == 2 * 2 * 2
    hashes = {c.cell_hash for c in cells}
    assert len(hashes) == len(cells)
    again = S.expand(suite, model_ids=IDS)
    assert [c.cell_hash for c in again] == [c.cell_hash for c in cells]  # stable
    # params are hashed with defaults filled: explicit default == implicit default
    explicit = S.parse({**_base(), "variants": [{"name": "a", "adapter": "think_budget", "params": {"max_answer_tokens": 32}}]})
    implicit = S.parse({**_base(), "variants": [{"name": "a", "adapter": "think_budget"}]})
    assert S.expand(explicit, model_ids=IDS)[0].cell_hash == S.expand(implicit, model_ids=IDS)[0].cell_hash
    # the limit, the model id and the variant's name matter / do not matter as they should
    assert S.expand(suite, limit=3, model_ids=IDS)[0].cell_hash != cells[0].cell_hash
    assert S.expand(suite, model_ids={"embedded": "embedded:other@111"})[0].cell_hash != cells[0].cell_hash
    renamed = S.parse({**_base(), "variants": [{"name": "zzz", "adapter": "baseline"}]})
    plain = S.parse(_base())
    assert S.expand(renamed, model_ids=IDS)[0].cell_hash == S.expand(plain, model_ids=IDS)[0].cell_hash
    assert "/" not in str(cells[0].identity)  # no paths in the identity


def test_duplicate_variant_configs_are_refused(tmp_path):
    data = _base()
    data["variants"].append({"name": "b", "adapter": "baseline"})
    with pytest.raises(S.SuiteError, match=r"variants\[1\]: same adapter"):
        S.load(_write(tmp_path, data))


@pytest.mark.parametrize(
    "mutate, text",
    [
        (lambda d: d.update(models=["embeded"]), "models[0]: unknown model 'embeded'; did you mean 'embedded'?"),
        (lambda d: d.update(models=["./nope/model.gguf"]), "models[0]: GGUF file not found"),
        (lambda d: d.update(defaults={"device": "gpu"}), "defaults.device: unknown device 'gpu'"),
        (
            lambda d: d["variants"].append({"name": "b", "adapter": "think_budget", "params": {"max_reasoning_tokens": 300}}),
            "variants[1].params: max_reasoning_tokens=300 >= max_new_tokens=256",
        ),
    ],
)
def test_unusable_models_devices_and_budgets_fail_validation(tmp_path, mutate, text):
    data = _base()
    mutate(data)
    with pytest.raises(S.SuiteError) as info:
        S.load(_write(tmp_path, data))
    assert text in str(info.value)


def test_same_effective_limit_is_the_same_run():
    suite = S.parse({**_base(), "defaults": {"limit": 4}})
    assert S.suite_hash(suite, None) == S.suite_hash(suite, 4) != S.suite_hash(suite, 3)


def test_missing_data_fails_before_any_model_loads(tmp_path, monkeypatch):
    from harness import models
    from harness.runner import run_suite
    from harness.tasks import DataError

    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere"):
        run_suite(_write(tmp_path, {**_base(), "defaults": {"device": "cpu"}}), tmp_path / "results")
    assert not list((tmp_path / "results").glob("runs/*/cells/*"))


def test_warmup_is_a_setting_but_not_part_of_the_cell_identity():
    from harness.config.suite import expand, parse

    def cells(warmup):
        data = {"name": "w", "models": ["embedded"], "tasks": ["gsm8k"], "variants": [{"name": "b", "adapter": "baseline"}],
                "defaults": {"warmup": warmup}}
        return expand(parse(data), model_ids={"embedded": "embedded:x"})

    none, two = cells(0), cells(2)
    assert none[0].warmup == 0 and two[0].warmup == 2
    assert none[0].cell_hash == two[0].cell_hash  # warm-up never changes what a cell measures
    with pytest.raises(Exception, match="warmup"):
        cells(-1)
