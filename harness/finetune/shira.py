"""SHiRA: sparse high-rank adapters through ``peft``'s ``ShiraConfig``.

Source: Bhardwaj et al., "Sparse High Rank Adapters", arXiv 2406.13175. A fixed sparse mask
selects ``r (m + n)`` entries of each adapted ``m x n`` weight (as many as a rank-``r`` LoRA
has parameters); only those entries train, the rest of the weight stays frozen, so the update is
high-rank but touches ~1-2 % of the weight and switching tasks rewrites only those entries. The
mask here is ``peft``'s random mask, seeded by the cell's seed.
"""

from __future__ import annotations

from pydantic import Field

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune


class ShiraParams(FinetuneParams):
    """SHiRA settings (peft ``ShiraConfig``)."""

    r: int = Field(8, ge=1, description="r (m + n) trained entries per adapted m x n weight")
    target_modules: tuple[str, ...] = Field(("query", "value"), min_length=1, description="Linear module names adapted")


def shira_layers(model) -> dict[str, object]:
    """Module name → peft SHiRA layer inside ``model``."""
    from peft.tuners.shira.layer import ShiraLayer

    return {name: m for name, m in model.named_modules() if isinstance(m, ShiraLayer)}


@register_finetune("shira")
class Shira(FinetuneAdapter):
    """Only the masked entries of the adapted weights train (plus the head)."""

    paper = "Sparse High Rank Adapters"
    arxiv = "2406.13175"
    Params = ShiraParams

    def prepare(self, model, ctx):
        from peft import ShiraConfig, TaskType, get_peft_model

        config = ShiraConfig(
            task_type=TaskType.SEQ_CLS,
            r=self.params.r,
            target_modules=list(self.params.target_modules),
            random_seed=ctx.seed,
        )
        return get_peft_model(model, config)

    def adapter_state(self, model):
        state = super().adapter_state(model)
        for name, layer in shira_layers(model).items():
            for adapter, idx in layer.shira_indices.items():
                state[f"{name}.shira_indices.{adapter}"] = idx
        return state

    def load_adapter_state(self, model, state):
        layers = shira_layers(model)
        indices = {k: v for k, v in state.items() if ".shira_indices." in k}
        super().load_adapter_state(model, {k: v for k, v in state.items() if k not in indices})
        for key, value in indices.items():
            name, _, adapter = key.rpartition(".shira_indices.")
            layers[name].shira_indices[adapter] = value
