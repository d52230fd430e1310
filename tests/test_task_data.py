"""Task data access (HARNESS_DATA_DIR / hub), TaskSpec behaviour and the task registry."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from harness.tasks import TASKS, ChoiceTaskSpec, DataError, TaskSpec, UnknownNameError, data_dir, get_task, load_jsonl_or_hub
from harness.tasks.data import DATA_DIR_ENV, read_jsonl

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    if not (SHARED_DATA / "gsm8k" / "test.jsonl").is_file() or not (SHARED_DATA / "math" / "math500_test.jsonl").is_file():
        pytest.skip(f"benchmark data not found under {SHARED_DATA} (needs gsm8k/test.jsonl and math/math500_test.jsonl)")
    monkeypatch.setenv(DATA_DIR_ENV, str(SHARED_DATA))
    return SHARED_DATA


@pytest.fixture
def fake_datasets(monkeypatch: pytest.MonkeyPatch):
    """A stand-in `datasets` module recording load_dataset calls (no network)."""
    calls: list[tuple] = []
    module = types.ModuleType("datasets")
    module.rows = [{"question": "q1", "answer": "a #### 1"}, {"question": "q2", "answer": "b #### 2"}]
    module.error = None

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        if module.error is not None:
            raise module.error
        return list(module.rows)

    module.load_dataset = load_dataset
    module.calls = calls
    monkeypatch.setitem(sys.modules, "datasets", module)
    return module


# ----------------------------------------------------------------------------------------------
# data_dir / load_jsonl_or_hub
# ----------------------------------------------------------------------------------------------


def test_data_dir_unset_and_empty(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert data_dir() is None
    monkeypatch.setenv(DATA_DIR_ENV, "  ")
    assert data_dir() is None


def test_data_dir_set(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_dir() == tmp_path


def test_local_file_is_read(monkeypatch, tmp_path, fake_datasets):
    (tmp_path / "sub").mkdir()
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    (tmp_path / "sub" / "f.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert load_jsonl_or_hub("sub/f.jsonl", "org/ds", None, "test") == rows
    assert fake_datasets.calls == []


def test_missing_file_names_path_and_env_var_and_does_not_fall_back(monkeypatch, tmp_path, fake_datasets):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError) as exc:
        load_jsonl_or_hub("gsm8k/test.jsonl", "openai/gsm8k", "main", "test")
    msg = str(exc.value)
    assert str(tmp_path / "gsm8k" / "test.jsonl") in msg
    assert DATA_DIR_ENV in msg
    assert fake_datasets.calls == []  # no silent fallback to the hub


def test_missing_data_dir_itself(monkeypatch, tmp_path, fake_datasets):
    missing = tmp_path / "nope"
    monkeypatch.setenv(DATA_DIR_ENV, str(missing))
    with pytest.raises(DataError, match=DATA_DIR_ENV) as exc:
        load_jsonl_or_hub("math/math500_test.jsonl", "HuggingFaceH4/MATH-500", None, "test")
    assert str(missing / "math" / "math500_test.jsonl") in str(exc.value)
    assert fake_datasets.calls == []


def test_bad_jsonl_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n{not json}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        read_jsonl(p)
    p.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON object"):
        read_jsonl(p)


def test_hub_path_when_unset(monkeypatch, fake_datasets):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    rows = load_jsonl_or_hub("gsm8k/test.jsonl", "openai/gsm8k", "main", "test")
    assert rows == fake_datasets.rows
    assert fake_datasets.calls == [("openai/gsm8k", "main", "test")]


def test_hub_error_is_wrapped(monkeypatch, fake_datasets):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    fake_datasets.error = ConnectionError("offline")
    with pytest.raises(DataError) as exc:
        load_jsonl_or_hub("gsm8k/test.jsonl", "openai/gsm8k", "main", "test")
    msg = str(exc.value)
    assert "openai/gsm8k" in msg and "offline" in msg and DATA_DIR_ENV in msg


def test_hub_without_datasets_package(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(DataError, match=DATA_DIR_ENV):
        load_jsonl_or_hub("gsm8k/test.jsonl", "openai/gsm8k", "main", "test")


def test_task_load_docs_via_hub(monkeypatch, fake_datasets):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    task = get_task("gsm8k")
    fake_datasets.rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(task.size)]
    docs = task.load_docs()
    assert fake_datasets.calls == [("openai/gsm8k", "main", "test")]
    assert [d["doc_id"] for d in docs[:3]] == [0, 1, 2] and task.reference(docs[5]) == "5"


# ----------------------------------------------------------------------------------------------
# TaskSpec on the real files
# ----------------------------------------------------------------------------------------------


def test_gsm8k_docs(data_env):
    task = get_task("gsm8k")
    docs = task.load_docs()
    assert len(docs) == task.size == 1319
    assert [d["doc_id"] for d in docs] == list(range(1319))
    assert set(docs[0]) == {"question", "answer", "doc_id"}
    assert docs[0]["question"].startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert task.reference(docs[0]) == "18"
    refs = [task.reference(d) for d in docs]
    assert all("," not in r and r.lstrip("-").isdigit() for r in refs)
    # references that had thousands separators in the file
    assert "1450000" in refs and "2125" in refs
    prompt = task.prompt(docs[0])
    assert prompt.endswith(docs[0]["question"]) and "\\boxed{}" in prompt and "step by step" in prompt


def test_math500_docs(data_env):
    task = get_task("math500")
    docs = task.load_docs()
    assert len(docs) == task.size == 500
    assert [d["doc_id"] for d in docs] == list(range(500))
    assert {"problem", "solution", "answer", "subject", "level", "unique_id", "doc_id"} <= set(docs[0])
    assert docs[0]["unique_id"] == "test/precalculus/807.json"
    assert task.reference(docs[0]) == r"\left( 3, \frac{\pi}{2} \right)"
    assert len({d["unique_id"] for d in docs}) == 500
    prompt = task.prompt(docs[1])
    # braces and dollars in the problem survive (no str.format on the question)
    assert prompt.endswith(docs[1]["problem"]) and "\\boxed{}" in prompt and "$" in prompt


def test_load_docs_returns_fresh_dicts(data_env):
    task = get_task("gsm8k")
    a = task.load_docs()
    a[0]["question"] = "mutated"
    assert task.load_docs()[0]["question"] != "mutated"


def test_load_docs_wrong_size(monkeypatch, tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match="expected 1319 docs"):
        get_task("gsm8k").load_docs()


def test_load_docs_missing_field(monkeypatch, tmp_path):
    (tmp_path / "math").mkdir()
    rows = [{"problem": "p", "answer": "1"}] * 499 + [{"solution": r"so \boxed{1}"}]
    (tmp_path / "math" / "math500_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match=r"row 499 lacks field\(s\) \['problem'\]"):
        get_task("math500").load_docs()


def test_math_docs_with_solution_only_load(monkeypatch, tmp_path):
    """Issue 16 item 2: a MATH doc with `solution` but no `answer` loads (it was refused by
    required_fields) and its reference is the solution's last box; one with neither loads too and
    grades its samples `error: ...` instead of failing the cell."""
    (tmp_path / "math").mkdir()
    rows = [{"problem": "p", "answer": "1"}] * 497 + [
        {"problem": "p", "solution": r"so $x = \boxed{\frac{1}{2}}$."},
        {"problem": "p", "solution": r"hence $\boxed 7$."},
        {"problem": "p"},
    ]
    (tmp_path / "math" / "math500_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    task = get_task("math500")
    docs = task.load_docs()
    assert [task.reference(d) for d in docs[497:499]] == [r"\frac{1}{2}", "7"]
    assert task.grade_doc(r"\boxed{0.5}", docs[497]).correct and task.grade_doc(r"\boxed{7}", docs[498]).correct
    g = task.grade_doc(r"\boxed{1}", docs[499])
    assert (g.correct, g.reference) == (False, None) and g.reason.startswith("error: no usable reference")
    assert task.target(docs[499]) == ""  # lm-eval's doc_to_target must not fail the cell


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------


def test_registry():
    glue = {"sst2", "mrpc", "rte", "cola", "qnli", "wnli", "stsb"}  # log-likelihood tasks (tests/test_glue.py)
    assert set(TASKS) == {"gsm8k", "math500", "math"} | glue
    for name, task in TASKS.items():
        assert isinstance(task, TaskSpec if name not in glue else ChoiceTaskSpec)
        assert task.name == name and get_task(name) is task
        assert task.version and task.description and task.size > 0
    assert (TASKS.get("gsm8k").hub_id, TASKS.get("gsm8k").hub_config, TASKS.get("gsm8k").hub_split) == ("openai/gsm8k", "main", "test")
    assert (TASKS.get("math500").hub_id, TASKS.get("math500").hub_config) == ("HuggingFaceH4/MATH-500", None)
    assert (TASKS.get("math").data_relpath, TASKS.get("math").size) == ("math/math_test_full.jsonl", 5000)


def test_math_full_docs(data_env):
    """Issue 16 item 2: the task `math` over the full MATH test set (5000 problems, `solution` only):
    every doc loads and has a reference (its solution's last box); MATH-500's 500 are among them
    with the same reference."""
    task = get_task("math")
    docs = task.load_docs()
    assert len(docs) == 5000 and not any("answer" in d for d in docs)
    refs = {d["unique_id"]: task.reference(d) for d in docs}
    assert all(refs.values())
    assert refs["test/algebra/1.json"] == "2"
    m500 = get_task("math500").load_docs()
    assert all(refs[d["unique_id"]] == d["answer"] for d in m500)
    assert task.prompt(docs[0]) == get_task("math500").prompt(docs[0])


def test_taskspec_is_frozen():
    with pytest.raises(AttributeError):
        get_task("gsm8k").version = "9"  # type: ignore[misc]


def test_unknown_task_did_you_mean():
    with pytest.raises(UnknownNameError) as exc:
        get_task("gsm8")
    assert isinstance(exc.value, KeyError)
    msg = str(exc.value)
    assert "did you mean 'gsm8k'" in msg and "gsm8k, math, math500" in msg
    with pytest.raises(UnknownNameError, match="did you mean 'math500'"):
        get_task("MATH-500")
    with pytest.raises(UnknownNameError) as exc:
        get_task("tau2")
    assert "did you mean" not in str(exc.value) and "known: cola, gsm8k, math, math500, " in str(exc.value)


def test_import_is_light():
    code = (
        "import sys, harness.tasks; "
        "print([m for m in ('torch', 'datasets', 'sympy', 'math_verify', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
