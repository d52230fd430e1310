"""``difficulty_router``: a difficulty probe routes each problem to an Easy / Normal / Hard strategy.

Follows DiffAdapt ("DiffAdapt: Difficulty-Adaptive Reasoning for Token-Efficient LLM
Inference", arXiv 2510.19669): a lightweight probe on the final hidden state of the last prompt
token classifies a problem as Easy, Normal or Hard, and each class is decoded with its own fixed
strategy (:data:`STRATEGY_PROMPTS` — our wording — plus a temperature and a token budget, the
params ``<class>_temperature`` / ``<class>_tokens``). Training-free for the model: only the probe
(scikit-learn logistic regression on standardized features) is fitted.

Probe training (:meth:`DifficultyRouter.prepare`; :mod:`harness.adapters.difficulty_probe`):
on the task's last ``calibration_docs`` problems, held out from evaluation (the slice of
:func:`harness.adapters.think_calibration.calibration_slice`), each problem is decoded with Easy,
then Normal, then (if still unsolved) Hard, graded by the task's own grader, and labelled with
the cheapest strategy that answered correctly. An unsolved problem is Hard when the mean token
entropy of its Normal trace is above the calibration median, else Normal (on the embedded
135M model, which solves almost nothing, this rule decides most labels). Probe accuracy is
measured by k-fold cross-validation on the calibration split (k = min(5, n)).

Routing (:class:`harness.adapters.routed_variant.RoutedVariant`): each request's plain chat
prompt (the task's, without any strategy prompt) is run once through the model; its last
token's final hidden state goes to the probe; the request is then decoded with its class's
system prompt, temperature (0 = greedy; it replaces the cell's) and budget (capped by the
cell's ``max_new_tokens``). The routing forward passes are inside the measured window.

``force`` (``easy`` / ``normal`` / ``hard``) skips the probe: every request gets that strategy
(each strategy alone, the ablation the router is compared with; no calibration).

Counters per request: ``routed_easy`` / ``routed_normal`` / ``routed_hard`` (1 for the class the
request went to: their cell means are the shares routed to each strategy) and
``probe_cv_accuracy`` (the probe's cross-validated accuracy on the calibration split; NaN when
``force`` is set).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.adapters.base import Adapter, AdapterParams, CellContext, register_adapter
from harness.adapters.difficulty_probe import CACHE_FILE, CLASSES, Probe, Strategy, calibrate, counters_of
from harness.generation import DecodePolicy, StaticCounters

STRATEGY_PROMPTS = {
    "easy": "This is an easy problem. Answer directly and briefly, with little or no reasoning, "
    "and give the final answer.",
    "normal": None,
    "hard": "This is a hard problem. Reason step by step, carefully, checking each step, "
    "before you give the final answer.",
}
"""System prompt of each strategy (``None``: the task's prompt as it is)."""

Difficulty = Literal["easy", "normal", "hard"]


class DifficultyRouterParams(AdapterParams):
    easy_tokens: int = Field(32, ge=1, description="token budget of the Easy strategy")
    normal_tokens: int = Field(64, ge=1, description="token budget of the Normal strategy")
    hard_tokens: int = Field(128, ge=1, description="token budget of the Hard strategy")
    easy_temperature: float = Field(0.0, ge=0.0, description="Easy sampling temperature (0 = greedy)")
    normal_temperature: float = Field(0.0, ge=0.0, description="Normal sampling temperature (0 = greedy)")
    hard_temperature: float = Field(0.0, ge=0.0, description="Hard sampling temperature (0 = greedy)")
    calibration_docs: int = Field(
        8, ge=2, description="last problems of the task's split the probe is trained on (held out from evaluation)"
    )
    force: Difficulty | None = Field(None, description="route every request to this strategy (no probe)")


def strategies(params: DifficultyRouterParams) -> dict[str, Strategy]:
    """The three strategies of ``params``, by class."""
    p = params.model_dump()
    return {c: Strategy(c, STRATEGY_PROMPTS[c], p[f"{c}_temperature"], p[f"{c}_tokens"]) for c in CLASSES}


@register_adapter("difficulty_router")
class DifficultyRouter(Adapter):
    paper = "DiffAdapt: Difficulty-Adaptive Reasoning for Token-Efficient LLM Inference"
    arxiv = "2510.19669"
    Params = DifficultyRouterParams
    counters = {
        **{f"routed_{c}": f"1 when the request was routed to the {c.capitalize()} strategy" for c in CLASSES},
        "probe_cv_accuracy": "the probe's k-fold cross-validated accuracy on the calibration split (NaN when forced)",
    }

    def __init__(self, params=None):
        super().__init__(params)
        self.probe: Probe | None = Probe.constant(self.params.force) if self.params.force else None
        self.cv_accuracy = float("nan")
        self.calibration: dict[str, Any] | None = None

    kept_files = (CACHE_FILE,)

    def check(self, max_new_tokens: int) -> None:
        for c in CLASSES:
            tokens = getattr(self.params, f"{c}_tokens")
            if tokens > max_new_tokens:
                raise ValueError(f"{c}_tokens={tokens} > max_new_tokens={max_new_tokens}: the cap would cut that strategy")

    def needs_preparation(self) -> str | None:
        if self.params.force:
            return None
        return f"difficulty_router trains its probe on a task's last {self.params.calibration_docs} docs"

    def prepare(self, base, spec, docs, context: CellContext) -> dict[str, Any]:
        """Train the probe on the held-out slice (cached; see
        :func:`harness.adapters.difficulty_probe.calibrate`); nothing when ``force`` is set.

        Returns:
            ``calibration_json`` (slice, labels and their counts, per-strategy solved counts, the
            entropy median, cross-validated accuracy, reuse) and ``calibration_time_s``.

        Raises:
            ValueError: the evaluated docs would overlap the calibration slice.
        """
        from harness.core.hashing import stable_json

        if self.params.force:
            return {}
        calibration, spent_s = calibrate(base, spec, docs, context, self.params.calibration_docs,
                                         strategies(self.params))
        self.probe = Probe.fit(calibration["features"], calibration["labels"])
        self.cv_accuracy = calibration["cv_accuracy"]
        self.calibration = {k: v for k, v in calibration.items() if k != "features"}
        record = {**self.calibration, "reused": spent_s == 0.0}
        return {"calibration_json": stable_json(record), "calibration_time_s": spent_s}

    def make_policy(self, tokenizer) -> DecodePolicy:
        """Outside the router's own request path (a bare decode): the forced class's counters,
        else no class (all ``routed_*`` 0)."""
        return StaticCounters(counters_of(self.params.force or "", self.cv_accuracy))

    def wrap(self, base, batch_size: int = 1, max_new_tokens: int = 256):
        """The routed variant (:class:`harness.adapters.routed_variant.RoutedVariant`).

        Raises:
            RuntimeError: the probe is not trained (call :meth:`prepare` first) and ``force`` is unset.
        """
        from harness.adapters.routed_variant import RoutedVariant
        from harness.models import param_bytes

        if self.probe is None:
            raise RuntimeError("difficulty_router needs its probe: call prepare() before wrap() (or set force)")
        return RoutedVariant(
            model=base.model,
            tokenizer=base.tokenizer,
            policy_factory=lambda: self.make_policy(base.tokenizer),
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            param_bytes=param_bytes(base.model),
            name=base.canonical_id,
            probe=self.probe,
            strategies=strategies(self.params),
            cv_accuracy=self.cv_accuracy,
        )
