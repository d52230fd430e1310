"""AutoPEFT-style search: which PEFT configuration, for how many trainable parameters?

Source: Zhou et al., "AutoPEFT: Automatic Configuration Search for Parameter-Efficient
Fine-Tuning", arXiv 2301.12132. AutoPEFT searches a configuration space (which modules are
adapted, in which layers, at what size) for the Pareto set of task performance against
trainable parameters, with multi-objective Bayesian optimisation. Here the space is LoRA's
(rank x adapted modules x adapted layers), the search is random sampling plus successive
halving (Jamieson & Talwalkar, arXiv 1502.07943; Hyperband's inner loop): ``n_trials``
configurations train ``min_steps`` steps, the better ``1/eta`` (by the task metric on a
held-out slice of the *train* split, never the validation set) continue to ``eta`` times as
many steps, until one is left, which trains one more rung. The Pareto set of (held-out metric
↑, trainable parameters ↓) over every trial's last evaluation is stored as JSON
(``technique_json``; front from :func:`harness.results.pareto.pareto_mask`); the cell's
metrics are the winner's on the validation set. ``steps`` counts every trial's steps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune
from harness.finetune.train import FitResult, evaluate, train_model

MODULE_SETS: dict[str, tuple[str, ...]] = {
    "qv": ("query", "value"),
    "qkv": ("query", "key", "value"),
    "qv_ffn": ("query", "value", "intermediate.dense", "output.dense"),
}
"""Named sets of adapted Linear modules (``output.dense`` matches the attention output and the FFN output)."""


class PeftSearchParams(FinetuneParams):
    """Search space and budget."""

    ranks: tuple[int, ...] = Field((1, 2, 4, 8, 16), min_length=1, description="LoRA ranks to try")
    module_sets: tuple[str, ...] = Field(tuple(MODULE_SETS), min_length=1, description=f"adapted modules: {sorted(MODULE_SETS)}")
    layer_sets: tuple[str, ...] = Field(("all", "upper"), min_length=1, description="adapted blocks: all | upper (top half)")
    n_trials: int = Field(4, ge=1, description="configurations sampled")
    min_steps: int = Field(10, ge=1, description="steps of the first rung")
    eta: int = Field(2, ge=2, description="halving rate: keep 1/eta, train eta times as long")
    holdout_docs: int = Field(200, ge=10, description="train-split documents held out to rank configurations")


@dataclass
class _Trial:
    config: dict[str, Any]
    adapter: Any
    model: Any
    stream: Any
    steps: int = 0
    metric: float | None = None
    trainable_params: int = 0
    last_loss: float | None = None
    saved_bytes: int = 0


@register_finetune("peft_search")
class PeftSearch(FinetuneAdapter):
    """Random search with successive halving over LoRA configurations; Pareto set of (metric, params)."""

    paper = "AutoPEFT: Automatic Configuration Search for Parameter-Efficient Fine-Tuning"
    arxiv = "2301.12132"
    Params = PeftSearchParams
    counters = {"trials": "configurations trained", "pareto_size": "configurations on the Pareto set"}

    def check(self, task: str) -> None:
        unknown = sorted(set(self.params.module_sets) - set(MODULE_SETS))
        bad_layers = sorted(set(self.params.layer_sets) - {"all", "upper"})
        if unknown or bad_layers:
            raise ValueError(f"peft_search: unknown module sets {unknown} or layer sets {bad_layers}")
        if self.params.n_trials > len(self.space()):
            raise ValueError(f"peft_search: n_trials {self.params.n_trials} > {len(self.space())} configurations in the space")

    def holdout_docs(self) -> int:
        return self.params.holdout_docs

    def space(self) -> list[dict[str, Any]]:
        """Every configuration of the search space, in a fixed order."""
        p = self.params
        return [{"r": r, "modules": m, "layers": lay} for r in p.ranks for m in p.module_sets for lay in p.layer_sets]

    def sample(self, seed: int) -> list[dict[str, Any]]:
        """``n_trials`` distinct configurations drawn with ``seed``."""
        return random.Random(seed).sample(self.space(), self.params.n_trials)

    def schedule(self) -> list[tuple[int, int]]:
        """``(trials alive, total steps each)`` per rung."""
        p = self.params
        rungs, alive, steps = [], p.n_trials, p.min_steps
        while True:
            rungs.append((alive, steps))
            if alive == 1:
                return rungs
            alive, steps = max(1, math.ceil(alive / p.eta)), steps * p.eta

    def total_steps(self) -> int:
        """Optimizer steps the whole search takes."""
        total, done = 0, 0
        for alive, steps in self.schedule():
            total += alive * (steps - done)
            done = steps
        return total

    def _lora(self, config: dict[str, Any], n_layers: int):
        from harness.finetune.lora import Lora

        layers = None if config["layers"] == "all" else tuple(range(n_layers // 2, n_layers))
        return Lora({"r": config["r"], "alpha": 2.0 * config["r"], "target_modules": MODULE_SETS[config["modules"]],
                     "layers": layers})

    def fit(self, ctx) -> FitResult:
        from harness.finetune.data import Encoded
        from harness.finetune.encoder import layers
        from harness.finetune.measure import count_params
        from harness.finetune.metrics import task_metrics
        from harness.results.pareto import pareto_mask

        holdout: Encoded = ctx.data.holdout_set()
        total_steps, done_steps = self.total_steps(), 0
        last_steps = self.schedule()[-1][1]
        trials = []
        for k, config in enumerate(self.sample(ctx.seed)):
            model = ctx.build(ctx.task.num_labels, ctx.seed)
            adapter = self._lora(config, len(layers(model)))
            model = adapter.prepare(model, ctx)
            stream = ctx.data.stream(last_steps, ctx.settings.batch_size, ctx.seed)
            trials.append(_Trial(config, adapter, model, stream, trainable_params=count_params(model)[0]))
        alive = trials
        for rung, (_, steps) in enumerate(self.schedule()):
            for trial in alive:

                def progress(done: int, _total: int, base: int = done_steps) -> None:
                    if ctx.on_step:
                        ctx.on_step(base + done, total_steps)

                result = train_model(trial.adapter, trial.model, trial.stream, ctx.settings, ctx.seed,
                                     progress, steps=steps - trial.steps)
                done_steps += steps - trial.steps
                trial.steps, trial.last_loss = steps, result.final_train_loss
                trial.saved_bytes = max(trial.saved_bytes, result.saved_activation_bytes or 0)
                preds = evaluate(trial.adapter, trial.model, holdout, ctx.settings.eval_batch_size,
                                 ctx.data.pad_id, ctx.device)[""]
                trial.metric = task_metrics(preds, holdout.labels)[ctx.task.metric]
            keep = math.ceil(len(alive) / self.params.eta) if len(alive) > 1 else 1
            alive = sorted(alive, key=lambda t: (-t.metric, t.trainable_params))[:keep]
        winner = alive[0]
        on_front = pareto_mask([t.metric for t in trials], [float(t.trainable_params) for t in trials])
        report = [
            {**t.config, "trainable_params": t.trainable_params, "holdout_metric": t.metric, "steps": t.steps,
             "pareto": bool(front), "selected": t is winner}
            for t, front in zip(trials, on_front)
        ]
        return FitResult(
            model=winner.model,
            adapter=winner.adapter,
            steps=done_steps,
            final_train_loss=winner.last_loss,
            saved_activation_bytes=max(t.saved_bytes for t in trials),
            counters={"trials": float(len(trials)), "pareto_size": float(sum(on_front))},
            extra={"metric": ctx.task.metric, "holdout_docs": len(holdout), "trials": report},
        )
