"""Turn a :class:`~harness.tasks.spec.TaskSpec` into an lm-eval task.

The harness owns its task definitions (prompt, data, grader, version) and lm-eval runs
them: requests, chat templating, ordering and per-sample logging are lm-eval's. Data comes
through the task's own loader (``$HARNESS_DATA_DIR`` or the hub, one code path) via
lm-eval's ``custom_dataset`` hook, so no data file is ever copied.

Generation settings: greedy by default, ``until=[]`` (the model's EOS ends a sequence; an empty
list keeps lm-eval from defaulting to a blank-line stop that would cut reasoning short).

Sampling (a cell with ``temperature > 0``; :func:`task_config`): the generation kwargs become
``do_sample: True, temperature, top_p, seed`` (``seed`` = the cell seed, from which the variant
derives each sample's generator seed, :func:`harness.variant.sample_seed`). ``samples = n > 1``
sets lm-eval's ``repeats: n``: lm-eval then sends each doc's one ``Instance`` n times and
appends the n responses to its ``resps`` in request order. lm-eval's default filter
(``take_first``) would keep only the first of them, so such a task also sets
``filter_list: [{name: none, filter: [{function: take_first_k, k: n}]}]``, which keeps all n
(the filter keeps lm-eval's default name ``none``); ``process_results`` then receives
``[[response_0, ..., response_{n-1}]]`` and the per-sample record's ``filtered_resps`` holds the
same list. Single-sample tasks keep lm-eval's defaults (``repeats: 1``, ``take_first``).

Grading happens once, in ``process_results``: every response is graded by the harness grader,
its :class:`~harness.tasks.grading.Grade` recorded under ``(doc_id, sample)`` in the dict
:func:`task_config` returns with the config (the sample rows are built from it, never graded
again), and the doc's ``exact_match`` is the mean over its samples. lm-eval calls
``process_results`` only after every request was generated, so a ``truncated_of(doc_id, sample)``
callable given to :func:`task_config` (the runner's: that sample's ``finish_reason == "length"``
in the variant's per-request stats) tells the grader which outputs the token cap cut. A doc
without a usable reference grades its samples ``error: ...``
(:meth:`~harness.tasks.spec.TaskSpec.grade_doc`); lm-eval's ``doc_to_target`` gets ``""`` for it.

Multiple-choice tasks (:class:`~harness.tasks.choice.ChoiceTaskSpec`, e.g. GLUE) become lm-eval
``multiple_choice`` tasks: one ``loglikelihood`` request per choice, lm-eval's own scoring and
metrics for classification (``acc``, ``f1``, ``mcc``), per-cell correlations for regression.
"""

from __future__ import annotations

from typing import Any, Callable

from harness.tasks.choice import ChoiceTaskSpec, pearson, spearman
from harness.tasks.grading import Grade
from harness.tasks.spec import TaskSpec

METRIC = "exact_match"

Grades = dict[tuple[int, int], Grade]
"""``(doc_id, sample) → Grade`` of every graded response (``doc_id`` = the doc's own ``doc_id``)."""


def responses(filtered: Any) -> list[str]:
    """A doc's responses, one per sample, from what lm-eval's filter left for its one request:
    the string itself (``take_first``) or the list of all samples (``take_first_k``)."""
    return [filtered] if isinstance(filtered, str) else list(filtered)


def task_config(
    spec: TaskSpec,
    max_new_tokens: int,
    docs: list[dict] | None = None,
    *,
    samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    truncated_of: Callable[[int, int], bool] | None = None,
) -> tuple[dict[str, Any], Grades]:
    """lm-eval ``TaskConfig`` mapping for ``spec`` (zero-shot, ``generate_until``) and the dict its
    ``process_results`` records each response's grade in (see the module docstring).

    Args:
        spec: the harness task.
        max_new_tokens: ``max_gen_toks`` of every request.
        docs: documents to serve (default: ``spec.load_docs()`` on first use).
        samples: responses per doc (lm-eval ``repeats``); more than one needs ``temperature > 0``.
        temperature, top_p: sampling settings; ``temperature == 0`` = greedy (then ``top_p`` must
            be 1: it would change nothing).
        seed: the cell seed (a generation kwarg when sampling; the variant derives per-sample
            seeds from it).
        truncated_of: ``(doc_id, sample) -> bool``, whether that response stopped at the token
            cap; called in ``process_results`` (after generation). None: no response is truncated.

    Raises:
        ValueError: ``samples < 1``, ``samples > 1`` or ``top_p < 1`` with ``temperature == 0``,
            ``top_p`` outside ``(0, 1]`` or a negative temperature.
    """
    if samples < 1 or temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"{spec.name}: bad sampling settings samples={samples}, temperature={temperature}, top_p={top_p}")
    if temperature == 0 and (samples > 1 or top_p < 1):
        raise ValueError(f"{spec.name}: samples={samples}, top_p={top_p} need temperature > 0 (greedy decoding is deterministic)")
    grades: Grades = {}

    def dataset(**_: Any):
        import datasets

        return {"test": datasets.Dataset.from_list(docs if docs is not None else spec.load_docs())}

    def process_results(doc: dict, results: list) -> dict[str, float]:
        doc_id = int(doc["doc_id"])
        scores = []
        for sample, text in enumerate(responses(results[0])):
            truncated = bool(truncated_of(doc_id, sample)) if truncated_of is not None else False
            grade = spec.grade_doc(text, doc, truncated=truncated)
            grades[(doc_id, sample)] = grade
            scores.append(float(grade.correct))
        return {METRIC: sum(scores) / len(scores)}

    generation: dict[str, Any] = {"until": [], "max_gen_toks": max_new_tokens, "do_sample": False}
    if temperature > 0:
        generation.update(do_sample=True, temperature=float(temperature), top_p=float(top_p), seed=int(seed))
    config: dict[str, Any] = {
        "task": spec.name,
        "custom_dataset": dataset,
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": spec.prompt,
        "doc_to_target": spec.target,
        "process_results": process_results,
        "metric_list": [{"metric": METRIC, "aggregation": "mean", "higher_is_better": True}],
        "generation_kwargs": generation,
        "num_fewshot": 0,
        "metadata": {"version": spec.version},
    }
    if samples > 1:
        config["repeats"] = samples
        config["filter_list"] = [{"name": "none", "filter": [{"function": "take_first_k", "k": samples}]}]
    return config, grades


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


def build_task(spec: TaskSpec | ChoiceTaskSpec, max_new_tokens: int, docs: list[dict] | None = None, **sampling):
    """An ``lm_eval.api.task.ConfigurableTask`` ready for ``simple_evaluate(tasks=[...])``.

    ``max_new_tokens`` and ``sampling`` (:func:`task_config`'s keywords) apply to generation
    tasks only; :func:`build_generation_task` also returns the grades.
    """
    from lm_eval.api.task import ConfigurableTask

    if isinstance(spec, ChoiceTaskSpec):
        return ConfigurableTask(config=choice_task_config(spec, docs))
    return build_generation_task(spec, max_new_tokens, docs, **sampling)[0]


def build_generation_task(spec: TaskSpec, max_new_tokens: int, docs: list[dict] | None = None, **sampling):
    """``(task, grades)``: the ``ConfigurableTask`` of :func:`task_config` and the dict its
    ``process_results`` fills with ``(doc_id, sample) → Grade`` while lm-eval evaluates it."""
    from lm_eval.api.task import ConfigurableTask

    config, grades = task_config(spec, max_new_tokens, docs, **sampling)
    return ConfigurableTask(config=config), grades
