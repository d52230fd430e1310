"""GLUE (Wang et al., "GLUE: A Multi-Task Benchmark and Analysis Platform for Natural Language
Understanding", arXiv 1804.07461) as zero-shot log-likelihood tasks for language models.

Data: the validation split (GLUE's public dev set; the test labels are hidden) from
``$HARNESS_DATA_DIR/glue/<task>/validation.jsonl`` or the hub's ``nyu-mll/glue`` (same field
names and label encodings).

Formulation: lm-eval's own GLUE prompts and choices (``lm_eval/tasks/glue/*/default.yaml``,
lm-eval 0.4.x) — the standard zero-shot formulation of these tasks for causal LMs — run as the
harness's versioned tasks: no few-shot examples, no chat template (the prompt is plain text
ending in ``Answer:``; each choice is scored as ``" " + choice``), prediction = the choice
with the highest log-likelihood. Metrics are GLUE's official ones through lm-eval's
implementations: accuracy (SST-2, RTE, QNLI, WNLI), accuracy and F1 of the positive class
(MRPC), Matthews correlation (CoLA).

=========  ==========================================  =====================  ======================
task       prompt (then `` <choice>``)                  choices by label       metrics
=========  ==========================================  =====================  ======================
sst2       ``{sentence}\\nQuestion: Is this sentence     negative, positive     acc
           positive or negative?\\nAnswer:``
mrpc       ``Sentence 1: …\\nSentence 2: …\\nQuestion:   no, yes                acc, f1
           Do both sentences mean the same thing?…``
rte        ``{sentence1}\\nQuestion: {sentence2} True   True, False            acc
           or False?\\nAnswer:``                         (0 = entailment)
cola       ``{sentence}\\nQuestion: Does this sentence   no, yes                mcc (+ acc)
           make sense?\\nAnswer:``
qnli       ``{question}\\n{sentence}\\nQuestion: Does    yes, no                acc
           this response answer the question?…``        (0 = entailment)
wnli       as rte                                      False, True            acc
                                                       (0 = not_entailment)
stsb       see below                                   0 … 5                  pearson, spearman
=========  ==========================================  =====================  ======================

STS-B is a regression task (gold similarity 0–5) and lm-eval ships no formulation of it. The
one used here asks for a 0–5 rating and scores the six one-digit answers; the prediction is
the expected rating under the model's distribution renormalised over the six choices,
``ŷ = Σ_k k · softmax(ll)_k`` (G-Eval's probability-weighted score, arXiv 2303.16634), which
keeps the graded information a single argmax would throw away. Official metrics: Pearson and
Spearman correlation of ŷ with the gold scores. It is a harness formulation, not lm-eval's:
compare its numbers only with this task version.

MNLI and QQP are left out: their validation sets are not in the offline data copy.
"""

from __future__ import annotations

from harness.tasks.registry import register_task
from harness.tasks.choice import ChoiceTaskSpec

__all__ = ["COLA", "MRPC", "QNLI", "RTE", "SST2", "STSB", "TASKS", "WNLI"]

_VERSION = "1.0"


def _glue(name: str, size: int, description: str, **kwargs) -> ChoiceTaskSpec:
    return ChoiceTaskSpec(
        name=name,
        version=_VERSION,
        description=description,
        data_relpath=f"glue/{name}/validation.jsonl",
        hub_id="nyu-mll/glue",
        hub_config=name,
        hub_split="validation",
        size=size,
        **kwargs,
    )


SST2 = _glue(
    "sst2",
    872,
    "GLUE SST-2 validation (872 movie-review sentences), zero-shot sentiment by log-likelihood; accuracy.",
    prompt_template="{sentence}\nQuestion: Is this sentence positive or negative?\nAnswer:",
    text_fields=("sentence",),
    choices=("negative", "positive"),
    label_names=("negative", "positive"),
    metrics=("acc",),
)

MRPC = _glue(
    "mrpc",
    408,
    "GLUE MRPC validation (408 sentence pairs), zero-shot paraphrase by log-likelihood; accuracy and F1.",
    prompt_template="Sentence 1: {sentence1}\nSentence 2: {sentence2}\n"
    "Question: Do both sentences mean the same thing?\nAnswer:",
    text_fields=("sentence1", "sentence2"),
    choices=("no", "yes"),
    label_names=("not_equivalent", "equivalent"),
    metrics=("acc", "f1"),
)

RTE = _glue(
    "rte",
    277,
    "GLUE RTE validation (277 premise/hypothesis pairs), zero-shot entailment by log-likelihood; accuracy.",
    prompt_template="{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:",
    text_fields=("sentence1", "sentence2"),
    choices=("True", "False"),
    label_names=("entailment", "not_entailment"),
    metrics=("acc",),
)

COLA = _glue(
    "cola",
    1043,
    "GLUE CoLA validation (1043 sentences), zero-shot acceptability by log-likelihood; Matthews correlation.",
    prompt_template="{sentence}\nQuestion: Does this sentence make sense?\nAnswer:",
    text_fields=("sentence",),
    choices=("no", "yes"),
    label_names=("unacceptable", "acceptable"),
    metrics=("acc", "mcc"),
)

QNLI = _glue(
    "qnli",
    5463,
    "GLUE QNLI validation (5463 question/sentence pairs), zero-shot answer entailment by log-likelihood; accuracy.",
    prompt_template="{question}\n{sentence}\nQuestion: Does this response answer the question?\nAnswer:",
    text_fields=("question", "sentence"),
    choices=("yes", "no"),
    label_names=("entailment", "not_entailment"),
    metrics=("acc",),
)

WNLI = _glue(
    "wnli",
    71,
    "GLUE WNLI validation (71 pronoun-resolution pairs), zero-shot entailment by log-likelihood; accuracy.",
    prompt_template="{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:",
    text_fields=("sentence1", "sentence2"),
    choices=("False", "True"),
    label_names=("not_entailment", "entailment"),
    metrics=("acc",),
)

STSB = _glue(
    "stsb",
    1500,
    "GLUE STS-B validation (1500 sentence pairs, similarity 0-5), zero-shot expected rating over the "
    "answers 0..5 by log-likelihood (harness formulation); Pearson and Spearman correlation.",
    prompt_template="Sentence 1: {sentence1}\nSentence 2: {sentence2}\n"
    "Question: On a scale from 0 (unrelated) to 5 (same meaning), how similar are the two sentences?\nAnswer:",
    text_fields=("sentence1", "sentence2"),
    choices=("0", "1", "2", "3", "4", "5"),
    choice_values=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0),
    metrics=("pearson", "spearman"),
)

TASKS: tuple[ChoiceTaskSpec, ...] = tuple(register_task(t) for t in (SST2, MRPC, RTE, COLA, QNLI, WNLI, STSB))
