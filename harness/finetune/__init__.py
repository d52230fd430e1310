"""Fine-tuning techniques (training cells). Importing this package registers every one.

Each module holds one technique (paper cited in its docstring); ``base`` holds the contract,
``train`` the shared loop (with its ``TrainSettings`` and ``FitResult``), ``measure`` the cost figures.
Heavy libraries (torch, transformers, peft) are imported inside the code that needs them.
"""

from harness.finetune import (  # noqa: F401  (registration)
    bitfit,
    full_ft,
    lora,
    meft,
    peft_search,
    poly,
    shira,
    sorted_depth,
    sparse_update,
)
from harness.finetune.base import (
    FINETUNE_ADAPTERS,
    FinetuneAdapter,
    FinetuneParams,
    FitContext,
    register_finetune,
)
from harness.finetune.train import FitResult, TrainSettings

__all__ = [
    "FINETUNE_ADAPTERS",
    "FinetuneAdapter",
    "FinetuneParams",
    "FitContext",
    "FitResult",
    "TrainSettings",
    "register_finetune",
]
