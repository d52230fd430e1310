"""Sample rows and metric columns of a multiple-choice (log-likelihood) evaluation cell.

One sample row per document, joined from lm-eval's per-sample record (its choices'
``(logprob, is_greedy)``) and the variant's per-request statistics (one request per choice,
keyed ``(task, doc_id, choice index, sample=0)``):

* ``correct``: 1.0 / 0.0 = predicted label == gold label (classification; checked against
  lm-eval's own ``acc``); null for regression (STS-B), whose quality is a per-cell correlation;
* ``output_text``: the chosen choice's text (regression: the predicted score);
  ``extracted_answer`` / ``reference``: predicted / gold label name (regression: scores);
  ``grade_reason``: every choice's log-likelihood in nats;
* ``input_tokens``: Σ over the doc's requests of context + continuation tokens;
  ``output_tokens``, ``finish_reason``, ``ttft_s``, ``tpot_s``, ``itl_s``: null — nothing is
  generated (null, not 0, so that per-token and throughput figures stay null instead of 0);
* ``latency_s``: Σ of the doc's requests' attributed shares of their batches' wall time, so
  the samples' latencies add up to the model's whole scoring time (cell column
  ``latency_attributed`` = True says they are attributed, not measured one by one);
* ``batch_size``: the largest batch (forward rows) any of its requests ran in.

Cell columns: ``metric_<name>`` for each of the task's metrics other than ``acc``
(``metric_f1``, ``metric_mcc``, ``metric_pearson``, ``metric_spearman``), as lm-eval aggregated them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from harness.core.rows import sample_row
from harness.tasks.choice import ChoiceTaskSpec, format_score

__all__ = ["choice_metric_columns", "choice_sample_rows"]


def choice_sample_rows(cell, spec: ChoiceTaskSpec, records: list[dict], stats: dict) -> list[dict[str, Any]]:
    """Sample rows (schema column names, sorted by ``doc_id``) of a multiple-choice cell.

    Args:
        cell: the :class:`harness.core.cell.Cell`.
        spec: the task.
        records: lm-eval's ``output["samples"][task]``.
        stats: the variant's ``(task, doc_id, idx, sample) → RequestStats`` (one sample per choice request).

    Raises:
        RuntimeError: a request has no stats, or lm-eval's ``acc`` disagrees with the
            harness's prediction.
    """
    rows = []
    for record in records:
        doc, doc_id = record["doc"], int(record["doc_id"])
        logprobs = [float(ll) for ll, _ in record["filtered_resps"]]
        requests = []
        for k in range(len(spec.choices)):
            s = stats.get((cell.task, record["doc_id"], k, 0))
            if s is None:
                raise RuntimeError(f"{cell.task} doc {doc_id} choice {k}: the variant recorded no stats")
            requests.append(s)
        prediction = spec.predict(logprobs)
        if spec.is_regression:
            correct = None
            output_text = format_score(prediction)
            reason = f"expected score {prediction:.4f}; "
        else:
            correct = float(prediction == spec.target(doc))
            if "acc" in record and float(record["acc"]) != correct:
                raise RuntimeError(f"{cell.task} doc {doc_id}: lm-eval's acc and the harness's prediction disagree")
            output_text = spec.choices[prediction]
            reason = ""
        reason += "log-likelihoods (nats): " + ", ".join(f"{c}={lp:.4f}" for c, lp in zip(spec.choices, logprobs))
        prompt = requests[0].prompt_text
        rows.append(
            sample_row(
                cell,
                doc_id,
                prompt,
                output_text=output_text,
                extracted_answer=spec.answer(prediction),
                reference=spec.reference(doc),
                correct=correct,
                grade_reason=reason,
                input_tokens=sum(s.input_tokens for s in requests),
                output_tokens=None,
                finish_reason=None,
                latency_s=sum(s.latency_s for s in requests),
                ttft_s=None,
                tpot_s=None,
                itl_s=None,
                batch_size=max(s.batch_size for s in requests),
                counters_json=json.dumps(requests[0].counters, sort_keys=True),
            )
        )
    rows.sort(key=lambda r: r["doc_id"])
    return rows


def choice_metric_columns(spec: ChoiceTaskSpec, results: dict[str, Any]) -> dict[str, float | None]:
    """``metric_<name>`` cell columns from lm-eval's aggregated ``output["results"][task]``
    (keys ``"<name>,none"``); NaN (e.g. a correlation with a constant prediction) becomes null.

    Raises:
        RuntimeError: lm-eval reported no value for one of the task's metrics.
    """
    out: dict[str, float | None] = {}
    for name in spec.metrics:
        if name == "acc":
            continue  # the cell's accuracy comes from the per-sample grades
        key = f"{name},none"
        if key not in results:
            raise RuntimeError(f"{spec.name}: lm-eval reported no {name!r} (got {sorted(results)})")
        value = float(results[key])
        out[f"metric_{name}"] = None if math.isnan(value) else value
    return out
