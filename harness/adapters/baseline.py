"""``baseline``: the reference variant — the base model with plain greedy decoding.

Its outputs equal ``transformers``' ``model.generate(do_sample=False)`` token for token
and lm-eval's own HF backend text for text (tests); every technique is compared with it.
"""

from __future__ import annotations

from harness.adapters.base import Adapter, AdapterParams, register_adapter


class BaselineParams(AdapterParams):
    """The baseline takes no parameters."""


@register_adapter("baseline")
class Baseline(Adapter):
    paper = ""
    arxiv = None
    Params = BaselineParams
    counters: dict[str, str] = {}
    supports_loglikelihood = True  # the plain model
