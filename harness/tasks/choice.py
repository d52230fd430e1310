"""ChoiceTaskSpec: a zero-shot multiple-choice task scored by log-likelihood (lm-eval ``multiple_choice``).

lm-eval builds one ``loglikelihood`` request per choice, ``(prompt, " " + choice)``, and the
variant returns ``(logprob, is_greedy)`` for each. Two kinds:

* **classification** (``label_names`` set): the prediction is the choice with the highest
  log-likelihood (lm-eval's ``acc``, unnormalised); lm-eval's own ``multiple_choice`` scoring
  and metric implementations give ``acc``, ``f1`` (scikit-learn, binary) and ``mcc``
  (scikit-learn's Matthews correlation).
* **regression** (``choice_values`` set): the prediction is the expected value of the choices
  under the model's distribution renormalised over them,
  ``ŷ = Σ_k v_k · softmax(ll)_k`` — the probability-weighted score of G-Eval (Liu et al.,
  "G-Eval: NLG Evaluation using GPT-4 with Better Human Alignment", arXiv 2303.16634) — and
  the metrics are Pearson and Spearman correlations with the gold scores (SciPy), aggregated
  by lm-eval as corpus-level metrics.

Importing this module is light (no torch, lm-eval, numpy or scipy at import time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

from harness.tasks.data import DataError
from harness.tasks.spec import load_checked_docs
from harness.tasks.grading import Grade

__all__ = ["ChoiceTaskSpec", "pearson", "spearman"]


@dataclass(frozen=True)
class ChoiceTaskSpec:
    """One multiple-choice (log-likelihood) task. Pure data plus small functions.

    Bump ``version`` whenever the prompt, the choices, the prediction rule or the metrics
    change: it is stored with every result (``task_version``).

    Attributes:
        name, version, description: as :class:`harness.tasks.spec.TaskSpec`.
        data_relpath, hub_id, hub_config, hub_split, size: where the split comes from and how
            many rows it has (local JSONL under ``$HARNESS_DATA_DIR`` with the hub's field names).
        prompt_template: literal text with ``{field}`` placeholders for ``text_fields``.
        text_fields: the doc fields substituted into the prompt (all required).
        choices: continuation text of each choice (lm-eval prepends ``target_delimiter``, " ").
        metrics: lm-eval metric names stored per cell, the primary one first
            (classification: ``acc`` then ``f1``/``mcc``; regression: ``pearson``, ``spearman``).
        label_names: classification: the dataset's name of each label index (``label``
            ``i`` ↔ ``choices[i]``); ``None`` for regression.
        choice_values: regression: the numeric value of each choice; ``None`` for classification.
        label_field: the gold label's field (an int index, or a float score for regression).
    """

    output_type: ClassVar[str] = "multiple_choice"

    name: str
    version: str
    description: str
    data_relpath: str
    hub_id: str
    hub_config: str | None
    hub_split: str
    size: int
    prompt_template: str
    text_fields: tuple[str, ...]
    choices: tuple[str, ...]
    metrics: tuple[str, ...]
    label_names: tuple[str, ...] | None = None
    choice_values: tuple[float, ...] | None = None
    label_field: str = "label"

    def __post_init__(self) -> None:
        if (self.label_names is None) == (self.choice_values is None):
            raise ValueError(f"task {self.name!r}: set exactly one of label_names (classification) or choice_values")
        per_choice = self.label_names if self.label_names is not None else self.choice_values
        if len(per_choice) != len(self.choices):
            raise ValueError(f"task {self.name!r}: {len(per_choice)} labels/values for {len(self.choices)} choices")

    @property
    def is_regression(self) -> bool:
        return self.choice_values is not None

    @property
    def required_fields(self) -> tuple[str, ...]:
        return (*self.text_fields, self.label_field)

    def load_docs(self) -> list[dict]:
        """All docs of the split in file order, each a fresh dict with ``doc_id`` = row index (int).

        Raises DataError when the data cannot be loaded, has the wrong number of rows, lacks a
        required field, or has a classification label outside the choices.
        """
        return load_checked_docs(self, self._check_label)

    def _check_label(self, i: int, row: dict) -> None:
        if not self.is_regression and row[self.label_field] not in range(len(self.choices)):
            raise DataError(f"task {self.name!r}: row {i} has label {row[self.label_field]!r} outside the choices")

    def prompt(self, doc: dict) -> str:
        """The zero-shot context for ``doc`` (plain substitution: braces in the text stay)."""
        text = self.prompt_template
        for name in self.text_fields:
            text = text.replace("{" + name + "}", str(doc[name]))
        return text

    def target(self, doc: dict) -> int:
        """lm-eval's ``doc_to_target``: the gold choice index (regression: the nearest choice,
        used only in lm-eval's sample log)."""
        gold = doc[self.label_field]
        if self.is_regression:
            return min(range(len(self.choices)), key=lambda k: abs(self.choice_values[k] - float(gold)))
        return int(gold)

    def reference(self, doc: dict) -> str:
        """Gold answer as a string: the label's name (classification) or the gold score."""
        gold = doc[self.label_field]
        return format_score(float(gold)) if self.is_regression else self.label_names[int(gold)]

    def predict(self, logprobs: Sequence[float]) -> int | float:
        """The prediction from the choices' log-likelihoods (nats, one per choice, in order):
        the argmax index (classification; the first on ties, as ``numpy.argmax``) or the
        expected choice value under ``softmax(logprobs)`` (regression).

        Raises:
            ValueError: not one log-likelihood per choice.
        """
        if len(logprobs) != len(self.choices):
            raise ValueError(f"task {self.name!r}: {len(logprobs)} log-likelihoods for {len(self.choices)} choices")
        if not self.is_regression:
            return max(range(len(logprobs)), key=lambda k: (logprobs[k], -k))
        top = max(logprobs)
        weights = [math.exp(lp - top) for lp in logprobs]
        return sum(w * v for w, v in zip(weights, self.choice_values)) / sum(weights)

    def answer(self, prediction: int | float) -> str:
        """A prediction as the string stored in ``extracted_answer`` (same form as ``reference``)."""
        return format_score(float(prediction)) if self.is_regression else self.label_names[int(prediction)]

    def grade(self, output_text: str, reference: str) -> Grade:
        """Classification: ``output_text`` (a choice's text, as stored) is correct when its label
        is ``reference``. Regression has no per-sample correctness: ``correct`` is False with
        reason ``"no per-sample grade (regression)"``; its metrics are correlations per cell.
        Never raises."""
        if self.is_regression:
            return Grade(False, output_text, reference, "no per-sample grade (regression)")
        text = (output_text or "").strip()
        if text not in self.choices:
            return Grade(False, None, reference, f"not a choice: {text[:40]!r}")
        label = self.label_names[self.choices.index(text)]
        ok = label == reference
        return Grade(ok, label, reference, "match" if ok else f"mismatch: {label} != {reference}")


def format_score(value: float) -> str:
    """A score as a short string (``4.75``, ``3.142``)."""
    return f"{value:.4g}"


def _pairs(items: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    gold = [float(g) for g, _ in items]
    pred = [float(p) for _, p in items]
    return gold, pred


def pearson(items: Sequence[tuple[float, float]]) -> float:
    """Pearson's r of ``(gold, prediction)`` pairs (SciPy); NaN when either side is constant
    or there are fewer than two pairs."""
    from scipy.stats import pearsonr

    gold, pred = _pairs(items)
    if len(gold) < 2 or len(set(gold)) < 2 or len(set(pred)) < 2:
        return float("nan")
    return float(pearsonr(gold, pred).statistic)


def spearman(items: Sequence[tuple[float, float]]) -> float:
    """Spearman's ρ of ``(gold, prediction)`` pairs (SciPy); NaN as :func:`pearson`."""
    from scipy.stats import spearmanr

    gold, pred = _pairs(items)
    if len(gold) < 2 or len(set(gold)) < 2 or len(set(pred)) < 2:
        return float("nan")
    return float(spearmanr(gold, pred).statistic)
