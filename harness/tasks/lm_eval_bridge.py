"""Turn a :class:`~harness.tasks.spec.TaskSpec` into an lm-eval task.

The harness owns its task definitions (prompt, data, grader, version) and lm-eval runs
them: requests, chat templating, ordering and per-sample logging are lm-eval's. Data comes
through the task's own loader (``$HARNESS_DATA_DIR`` or the hub, one code path) via
lm-eval's ``custom_dataset`` hook, so no data file is ever copied.

Generation settings: greedy, ``until=[]`` (the model's EOS ends a sequence; an empty list
keeps lm-eval from defaulting to a blank-line stop that would cut reasoning short).

Multiple-choice tasks (:class:`~harness.tasks.choice.ChoiceTaskSpec`, e.g. GLUE) become lm-eval
``multiple_choice`` tasks: one ``loglikelihood`` request per choice, lm-eval's own scoring and
metrics for classification (``acc``, ``f1``, ``mcc``), per-cell correlations for regression.
"""

from __future__ import annotations

from typing import Any

from harness.tasks.choice import ChoiceTaskSpec, pearson, spearman
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


# lm-eval aggregation of each metric a ChoiceTaskSpec may list (names from lm_eval.api.metrics).
_CHOICE_AGGREGATIONS: dict[str, Any] = {
    "acc": "mean",
    "f1": "f1",  # scikit-learn f1_score, positive class = label 1
    "mcc": "matthews_corrcoef",  # scikit-learn matthews_corrcoef
    "pearson": pearson,
    "spearman": spearman,
}


def choice_task_config(spec: ChoiceTaskSpec, docs: list[dict] | None = None) -> dict[str, Any]:
    """lm-eval ``TaskConfig`` mapping for a multiple-choice ``spec`` (zero-shot, ``multiple_choice``).

    Classification uses lm-eval's built-in ``multiple_choice`` scoring (argmax log-likelihood;
    ``acc``, ``f1``, ``mcc``); regression scores each doc with ``spec.predict`` and aggregates
    ``(gold, prediction)`` pairs into Pearson / Spearman correlations.

    Raises:
        ValueError: ``spec.metrics`` names a metric this bridge does not know.
    """
    unknown = [m for m in spec.metrics if m not in _CHOICE_AGGREGATIONS]
    if unknown:
        raise ValueError(f"task {spec.name!r}: unknown metric(s) {unknown}; known: {sorted(_CHOICE_AGGREGATIONS)}")

    def dataset(**_: Any):
        import datasets

        return {"test": datasets.Dataset.from_list(docs if docs is not None else spec.load_docs())}

    config: dict[str, Any] = {
        "task": spec.name,
        "custom_dataset": dataset,
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": spec.prompt,
        "doc_to_target": spec.target,
        "doc_to_choice": list(spec.choices),
        "target_delimiter": " ",
        "metric_list": [
            {"metric": m, "aggregation": _CHOICE_AGGREGATIONS[m], "higher_is_better": True} for m in spec.metrics
        ],
        "num_fewshot": 0,
        "metadata": {"version": spec.version},
    }
    if spec.is_regression:

        def process_results(doc: dict, results: list[tuple[float, bool]]) -> dict[str, tuple[float, float]]:
            pair = (float(doc[spec.label_field]), float(spec.predict([ll for ll, _ in results])))
            return {m: pair for m in spec.metrics}

        config["process_results"] = process_results
    return config


def build_task(spec: TaskSpec | ChoiceTaskSpec, max_new_tokens: int, docs: list[dict] | None = None):
    """An ``lm_eval.api.task.ConfigurableTask`` ready for ``simple_evaluate(tasks=[...])``.

    ``max_new_tokens`` applies to generation tasks only.
    """
    from lm_eval.api.task import ConfigurableTask

    if isinstance(spec, ChoiceTaskSpec):
        return ConfigurableTask(config=choice_task_config(spec, docs))
    return ConfigurableTask(config=task_config(spec, max_new_tokens, docs))
