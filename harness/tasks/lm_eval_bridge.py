"""Turn a :class:`~harness.tasks.spec.TaskSpec` into an lm-eval task.

The harness owns its task definitions (prompt, data, grader, version) and lm-eval runs
them: requests, chat templating, ordering and per-sample logging are lm-eval's. Data comes
through the task's own loader (``$HARNESS_DATA_DIR`` or the hub, one code path) via
lm-eval's ``custom_dataset`` hook, so no data file is ever copied.

Generation settings: greedy, ``until=[]`` (the model's EOS ends a sequence; an empty list
keeps lm-eval from defaulting to a blank-line stop that would cut reasoning short).
"""

from __future__ import annotations

from typing import Any

from harness.tasks.spec import TaskSpec

METRIC = "exact_match"


def task_config(spec: TaskSpec, max_new_tokens: int, docs: list[dict] | None = None) -> dict[str, Any]:
    """lm-eval ``TaskConfig`` mapping for ``spec`` (zero-shot, ``generate_until``).

    Args:
        spec: the harness task.
        max_new_tokens: ``max_gen_toks`` of every request.
        docs: documents to serve (default: ``spec.load_docs()`` on first use).
    """

    def dataset(**_: Any):
        import datasets

        return {"test": datasets.Dataset.from_list(docs if docs is not None else spec.load_docs())}

    def process_results(doc: dict, results: list[str]) -> dict[str, float]:
        return {METRIC: float(spec.grade(results[0], spec.reference(doc)).correct)}

    return {
        "task": spec.name,
        "custom_dataset": dataset,
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": spec.prompt,
        "doc_to_target": spec.reference,
        "process_results": process_results,
        "metric_list": [{"metric": METRIC, "aggregation": "mean", "higher_is_better": True}],
        "generation_kwargs": {"until": [], "max_gen_toks": max_new_tokens, "do_sample": False},
        "num_fewshot": 0,
        "metadata": {"version": spec.version},
    }


def build_task(spec: TaskSpec, max_new_tokens: int, docs: list[dict] | None = None):
    """An ``lm_eval.api.task.ConfigurableTask`` ready for ``simple_evaluate(tasks=[...])``."""
    from lm_eval.api.task import ConfigurableTask

    return ConfigurableTask(config=task_config(spec, max_new_tokens, docs))
