"""``difficulty_router``'s strategies, probe and probe training (DiffAdapt, arXiv 2510.19669).

Training data (:func:`calibrate`): the task's last ``n_docs`` problems, held out from evaluation
(:func:`harness.adapters.think_calibration.calibration_slice`). Each is decoded with Easy, then
Normal, then — only when neither answered correctly — Hard; outputs are graded by the task's own
grader (:meth:`harness.tasks.spec.TaskSpec.grade_doc`, told whether the output hit its budget).
Label: the cheapest strategy that answered correctly; an unsolved problem is ``hard`` when its
Normal trace's mean token entropy (nats, of the model's next-token distribution at temperature 1)
is above the median over the calibration problems, else ``normal``. Features: the final hidden
state of the last token of the plain chat prompt (:func:`last_token_state`).

Cache: keyed by everything that determines it (model id, dtype, device, chat template, task and
version, slice, cap, batch size, the strategies) in ``<run dir>/difficulty_router_calibration.json``
(through ``CellContext.files``), so later cells and resumed runs reuse it (features included: the
probe is refitted from them, deterministically). Outside a run nothing is cached.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from typing import Any

import torch

from harness.adapters.reasoning_format import chat_prompt
from harness.generation import DecodePolicy, GenerationSettings, RowState, eos_ids, generate
from harness.telemetry.clock import monotonic_s

CLASSES = ("easy", "normal", "hard")
"""Difficulty classes, cheapest strategy first."""

CACHE_FILE = "difficulty_router_calibration.json"
CALIBRATION_FORMAT = 1  # bump when what a calibration measures changes (invalidates caches)


@dataclass(frozen=True)
class Strategy:
    """One class's decoding: system prompt (``None``: none), temperature (0 = greedy), token budget."""

    name: str
    system_prompt: str | None
    temperature: float
    max_tokens: int

    def generation_kwargs(self, kwargs: dict[str, Any], default_cap: int) -> dict[str, Any]:
        """lm-eval generation ``kwargs`` rewritten to this strategy: its budget (capped by the
        request's ``max_gen_toks``, else ``default_cap``) and its temperature (``do_sample``)."""
        out = dict(kwargs)
        out["max_gen_toks"] = min(self.max_tokens, int(kwargs.get("max_gen_toks") or default_cap))
        if self.temperature > 0:
            out.update(do_sample=True, temperature=self.temperature)
        else:
            out.update(do_sample=False)
            out.pop("temperature", None)
            out.pop("top_p", None)
        return out

    def settings(self, cap: int, eos: list[int]) -> GenerationSettings:
        """Decode-loop settings of this strategy under a cap of ``cap`` tokens."""
        return GenerationSettings(
            max_new_tokens=min(self.max_tokens, cap), eos_token_ids=eos, temperature=self.temperature
        )


class Probe:
    """The difficulty classifier: features ``[n, hidden]`` (float32) → class names.

    ``Probe.constant(c)`` always answers ``c``; :meth:`fit` trains a standardized logistic
    regression (scikit-learn), or a constant when the labels hold one class only.
    """

    def __init__(self, model=None, constant: str | None = None):
        self.model, self.const = model, constant

    @classmethod
    def constant(cls, name: str) -> "Probe":
        return cls(constant=name)

    @classmethod
    def fit(cls, features, labels: list[str]) -> "Probe":
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if len(set(labels)) == 1:
            return cls.constant(labels[0])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(np.asarray(features, dtype=np.float32), list(labels))
        return cls(model=model)

    def predict(self, features) -> list[str]:
        import numpy as np

        features = np.asarray(features, dtype=np.float32)
        if self.const is not None:
            return [self.const] * len(features)
        return [str(c) for c in self.model.predict(features)]


def cross_validated_accuracy(features, labels: list[str], folds: int = 5) -> float:
    """Accuracy of :meth:`Probe.fit` under k-fold cross-validation (k = min(``folds``, n);
    shuffled, seed 0): each problem is predicted by a probe trained without it."""
    import numpy as np
    from sklearn.model_selection import KFold

    features = np.asarray(features, dtype=np.float32)
    labels = list(labels)
    hits = 0
    for train, test in KFold(n_splits=min(folds, len(labels)), shuffle=True, random_state=0).split(features):
        probe = Probe.fit(features[train], [labels[i] for i in train])
        hits += sum(p == labels[i] for p, i in zip(probe.predict(features[test]), test))
    return hits / len(labels)


def last_token_state(model, prompt_ids: list[int]):
    """The final hidden state (after the final norm) of the last token of ``prompt_ids``: a
    float32 numpy vector ``[hidden]``. One prompt per pass, so it never depends on padding."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt_ids], device=device), output_hidden_states=True, logits_to_keep=1)
    return out.hidden_states[-1][0, -1].float().cpu().numpy()


def counters_of(name: str, cv_accuracy: float) -> dict[str, float]:
    """The per-request counters of a request routed to class ``name``."""
    return {**{f"routed_{c}": float(c == name) for c in CLASSES}, "probe_cv_accuracy": float(cv_accuracy)}




class EntropyPolicy(DecodePolicy):
    """Default decoding that also reports ``trace_entropy_mean``: the mean over a row's generated
    tokens of the entropy (nats) of the model's next-token distribution (softmax of the raw logits)."""

    def __init__(self):
        self.sums: dict[int, float] = {}
        self.steps: dict[int, int] = {}

    def choose(self, rows: list[RowState], logits: torch.Tensor) -> list[int]:
        logp = torch.log_softmax(logits.float(), dim=-1)
        entropy = (-(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1)).tolist()  # masked logits add 0
        for row, h in zip(rows, entropy):
            if not row.done:
                self.sums[row.index] = self.sums.get(row.index, 0.0) + h
                self.steps[row.index] = self.steps.get(row.index, 0) + 1
        return super().choose(rows, logits)

    def finish(self, row: RowState) -> None:
        n = self.steps.get(row.index, 0)
        row.counters["trace_entropy_mean"] = self.sums.get(row.index, 0.0) / n if n else 0.0


def label_problems(solved: dict[str, list[bool]], entropy: list[float]) -> tuple[list[str], float]:
    """Each problem's label from which strategies solved it (``solved[class][i]``; a strategy not
    run on a problem counts as unsolved) and its Normal trace entropy; and the entropy median."""
    median = statistics.median(entropy)
    labels = []
    for i, h in enumerate(entropy):
        cheapest = next((c for c in CLASSES if solved[c][i]), None)
        labels.append(cheapest or ("hard" if h > median else "normal"))
    return labels, median


def calibrate(base, spec, docs: list[dict], context, n_docs: int, strategies: dict[str, Strategy]):
    """Decode, grade and label the held-out slice; measure the probe's cross-validated accuracy.

    Returns:
        ``(calibration, spent_s)``: the calibration dict (``features`` ``[n][hidden]``, ``labels``,
        ``label_counts``, ``solved_counts`` per strategy, ``entropy``, ``entropy_median``,
        ``cv_accuracy``, ``slice``, ``n``, ``measured_time_s``) and the seconds spent in this
        call (0.0 when reused from the cache).

    Raises:
        ValueError: the evaluated docs would overlap the calibration slice.
    """
    from harness.adapters.think_calibration import calibration_slice, read_kept_json
    from harness.core.hashing import stable_hash
    from harness.variant import sample_seed

    start, stop = calibration_slice(len(docs), n_docs, context.limit, spec.name)
    key = stable_hash({
        "format": CALIBRATION_FORMAT, "model": base.canonical_id, "dtype": base.dtype, "device": str(base.device),
        "chat_template": base.chat_template_hash, "task": spec.name, "task_version": spec.version,
        "slice": [start, stop], "max_new_tokens": context.max_new_tokens, "batch_size": context.batch_size,
        "strategies": {c: asdict(s) for c, s in strategies.items()},
    })
    cached = read_kept_json(context.files, CACHE_FILE).get(key)
    if cached is not None:
        return cached, 0.0

    began = monotonic_s()
    tok, model = base.tokenizer, base.model
    eos = eos_ids(model, tok)
    calib = docs[start:stop]
    messages = [[{"role": "user", "content": spec.prompt(doc)}] for doc in calib]
    features = [last_token_state(model, tok(chat_prompt(tok, m), add_special_tokens=False)["input_ids"]).tolist()
                for m in messages]
    solved = {c: [False] * len(calib) for c in CLASSES}
    entropy = [0.0] * len(calib)
    todo = list(range(len(calib)))
    for name in CLASSES:
        if name == "hard":
            todo = [i for i in todo if not solved["easy"][i] and not solved["normal"][i]]
        if not todo:
            continue
        strategy = strategies[name]
        prompts = [tok(chat_prompt(tok, messages[i], strategy.system_prompt), add_special_tokens=False)["input_ids"]
                   for i in todo]
        seeds = [sample_seed(0, calib[i]["doc_id"], 0) for i in todo] if strategy.temperature else None
        results = generate(model, tok, prompts, strategy.settings(context.max_new_tokens, eos), EntropyPolicy(),
                           seeds=seeds, batch_size=context.batch_size)
        for i, result in zip(todo, results):
            grade = spec.grade_doc(result.text, calib[i], truncated=result.finish_reason == "length")
            solved[name][i] = bool(grade.correct)
            if name == "normal":
                entropy[i] = result.counters["trace_entropy_mean"]
    labels, median = label_problems(solved, entropy)
    calibration = {
        "task": spec.name, "task_version": spec.version, "slice": f"docs[{start}:{stop}]", "n": stop - start,
        "features": features, "labels": labels, "label_counts": {c: labels.count(c) for c in CLASSES},
        "solved_counts": {c: sum(solved[c]) for c in CLASSES}, "entropy": entropy, "entropy_median": median,
        "cv_accuracy": cross_validated_accuracy(features, labels), "measured_time_s": monotonic_s() - began,
    }
    if context.files is not None:
        entries = read_kept_json(context.files, CACHE_FILE)
        entries[key] = calibration
        context.files[CACHE_FILE] = json.dumps(entries, sort_keys=True).encode()
    return calibration, calibration["measured_time_s"]
