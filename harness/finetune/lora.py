"""LoRA, rank-stabilised LoRA and DoRA through the ``peft`` library.

Sources:
* LoRA: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685:
  ``W x + (alpha / r) B A x`` with ``A [r, in]`` random, ``B [out, r]`` zero, ``W`` frozen.
* rsLoRA: Kalajdzievski, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA",
  arXiv 2312.03732: scaling ``alpha / sqrt(r)`` instead of ``alpha / r``.
* DoRA: Liu et al., "DoRA: Weight-Decomposed Low-Rank Adaptation", arXiv 2402.09353: the
  adapted weight is split into a trained magnitude vector and a LoRA-updated direction.
These three form the PEFT axis of EfficientLLM (arXiv 2505.13840), which this suite follows.

The head (``classifier``) is new and trains whole (peft's ``modules_to_save``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune


class LoraParams(FinetuneParams):
    """LoRA settings (peft ``LoraConfig``)."""

    r: int = Field(8, ge=1, description="rank of the update B A")
    alpha: float = Field(16.0, gt=0, description="scaling numerator (alpha / r, or alpha / sqrt(r) for rsLoRA)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter's input")
    target_modules: tuple[str, ...] = Field(("query", "value"), min_length=1, description="Linear module names adapted")
    layers: tuple[int, ...] | None = Field(None, description="block indices adapted (None = all)")


def peft_classifier(model, config):
    """``peft.get_peft_model`` of a sequence-classification model (head in ``modules_to_save``)."""
    from peft import get_peft_model

    return get_peft_model(model, config)


@register_finetune("lora")
class Lora(FinetuneAdapter):
    """Low-rank updates of the targeted Linear layers; encoder weights frozen."""

    paper = "LoRA: Low-Rank Adaptation of Large Language Models"
    arxiv = "2106.09685"
    Params = LoraParams
    use_rslora: ClassVar[bool] = False
    use_dora: ClassVar[bool] = False

    def lora_config(self):
        from peft import LoraConfig, TaskType

        p = self.params
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=p.r,
            lora_alpha=p.alpha,
            lora_dropout=p.dropout,
            target_modules=list(p.target_modules),
            layers_to_transform=list(p.layers) if p.layers is not None else None,
            use_rslora=self.use_rslora,
            use_dora=self.use_dora,
        )

    def prepare(self, model, ctx):
        return peft_classifier(model, self.lora_config())


@register_finetune("rslora")
class RsLora(Lora):
    """LoRA with the rank-stabilised scaling ``alpha / sqrt(r)``."""

    paper = "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA"
    arxiv = "2312.03732"
    use_rslora = True


@register_finetune("dora")
class Dora(Lora):
    """Weight-decomposed LoRA: trained magnitude times a LoRA-updated direction."""

    paper = "DoRA: Weight-Decomposed Low-Rank Adaptation"
    arxiv = "2402.09353"
    use_dora = True
