"""Full fine-tuning: every parameter of the encoder and the new head trains (the reference).

The standard recipe of BERT (Devlin et al., "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", arXiv 1810.04805): the pretrained encoder and a
classification head on the first token, trained end to end with AdamW.
"""

from __future__ import annotations

from harness.finetune.base import FinetuneAdapter, FinetuneParams, register_finetune


class FullFtParams(FinetuneParams):
    """No parameters: everything trains."""


@register_finetune("full_ft")
class FullFineTuning(FinetuneAdapter):
    """Every parameter trains; the stored state is the whole model."""

    paper = "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
    arxiv = "1810.04805"
    Params = FullFtParams
