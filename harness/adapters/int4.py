"""``int4``: group-wise 4-bit integer weight-only quantization of every decoder-layer ``nn.Linear``.

Follows EfficientLLM's quantization axis (arXiv 2505.13840, "EfficientLLM: Efficiency
Evaluation of Large Language Models"), int4 weight-only (W4A16/W4A32), through torchao. Each
row of a weight is split into groups of ``group_size`` input features; each group gets its own
scale and zero point (torchao's tinygemm scheme, asymmetric). The layout depends on the device
(:func:`int4_layout`; torchao 0.18):

* CPU: ``Int4OpaqueTensor`` (torchao's prototype ``PrototypeInt4WeightOnlyConfig``, the
  ``_weight_int4pack_mm_for_cpu`` kernel), fp32 / bf16 / fp16 activations.
* CUDA: ``Int4TilePackedTo4dTensor`` (``Int4WeightOnlyConfig(int4_packing_format=
  "tile_packed_to_4d")``, tinygemm), which needs ``dtype: bf16``.

When neither runs here, :meth:`Int4.check_device` raises a one-line "needs a GPU" error once the
run's device is resolved, before any model loads (:meth:`harness.runner.run`).

Every decoder linear must be quantized: a ``group_size`` that does not divide a linear's input
features is an error (torchao would silently skip that linear). The tied token embedding / LM
head stays in full precision, as in ``int8``. Quantization is applied to a deep copy, so the
shared base stays intact. ``param_bytes`` counts the packed int4 weights with their scales and
zero points (the serialized tensor subclasses), below ``int8``'s.

Measured on the embedded SmolLM2-135M (fp32, CPU; greedy top-1 agreement with the base,
teacher-forced on the base's own 128-token greedy answers to 3 prompts = 384 tokens):
``group_size`` 64: 73.7 %, 180.2 MB; ``group_size`` 32: 100 %, 193.5 MB (the embedded weights
come from a Q4_1 GGUF, itself asymmetric int4 in groups of 32, so this grid re-encodes them
exactly); ``int8``: 96.1 %, 220.8 MB; fp32 base 538.1 MB (the full-precision tied embedding is
113 MB of each). On this CPU torchao's int4 kernel is much slower than the fp32 matmul (int4 is
a memory saving here, not a speed-up).

Requires ``torchao`` (a core dependency).
"""

from __future__ import annotations

import copy
import functools
from typing import Literal

from pydantic import Field

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.adapters.int8 import quantized_linear_names
from harness.generation import StaticCounters

CPU_LAYOUT = "opaque_cpu"
CUDA_LAYOUT = "tile_packed_to_4d"


class Int4Params(AdapterParams):
    group_size: Literal[32, 64, 128, 256] = Field(
        64, description="input features per scale/zero-point group (must divide every decoder linear's input "
        "features: 128 and 256 do not divide the embedded model's 576)"
    )


def _config(layout: str, group_size: int):
    """The torchao config of ``layout``."""
    if layout == CPU_LAYOUT:
        from torchao.prototype.quantization.int4.inference_workflow import PrototypeInt4WeightOnlyConfig

        return PrototypeInt4WeightOnlyConfig(group_size=group_size)
    from torchao.quantization import Int4WeightOnlyConfig

    return Int4WeightOnlyConfig(group_size=group_size, int4_packing_format=CUDA_LAYOUT)


@functools.lru_cache(maxsize=None)
def int4_layout(device: str, dtype: str) -> str:
    """The int4 layout that runs on ``device`` (``cpu`` / ``cuda[:N]``) at ``dtype``
    (``fp32`` / ``bf16`` / ``fp16``), probed by quantizing and running a 64x64 linear there.

    Returns:
        :data:`CPU_LAYOUT` or :data:`CUDA_LAYOUT`.

    Raises:
        ValueError: no int4 layout runs there (one line: on CPU "needs a GPU"; on CUDA the dtype).
    """
    import torch

    try:
        from torchao.quantization import quantize_
    except ImportError as exc:  # pragma: no cover - torchao is a core dependency
        raise ValueError("the int4 adapter needs torchao: pip install torchao") from exc
    cuda = device.startswith("cuda")
    if cuda and dtype != "bf16":
        raise ValueError(f"int4 on CUDA runs torchao's tinygemm layout, which needs dtype bf16 (got {dtype})")
    layout = CUDA_LAYOUT if cuda else CPU_LAYOUT
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    try:
        probe = torch.nn.Sequential(torch.nn.Linear(64, 64, bias=False)).to(device=device, dtype=torch_dtype)
        quantize_(probe, _config(layout, 32))
        probe(torch.ones(1, 64, device=device, dtype=torch_dtype))
    except Exception as exc:  # noqa: BLE001 - any failure means this layout does not run here
        where = "this CPU" if not cuda else device
        hint = "; int4 needs a GPU (device: cuda, dtype: bf16)" if not cuda else ""
        raise ValueError(f"int4: torchao's {layout} layout does not run on {where} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160] if str(exc) else ''}){hint}") from None
    return layout


@register_adapter("int4")
class Int4(Adapter):
    paper = "EfficientLLM: Efficiency Evaluation of Large Language Models (int4 weight-only, via torchao)"
    arxiv = "2505.13840"
    Params = Int4Params
    counters = {"quantized_linears": "number of decoder-layer nn.Linear modules quantized to int4"}
    supports_loglikelihood = True  # a model transform: a plain forward pass

    def check_device(self, device: str, dtype: str) -> None:
        """Refuse a device where no int4 layout runs (``ValueError``; see :func:`int4_layout`)."""
        int4_layout(device, dtype)

    def prepare_model(self, base):
        import torch
        from torchao.quantization import quantize_

        layout = int4_layout(str(base.device), base.dtype)
        model = copy.deepcopy(base.model)
        group = self.params.group_size
        targets = set(quantized_linear_names(model))
        for name, module in model.named_modules():
            if name in targets and module.in_features % group:
                raise ValueError(
                    f"int4: group_size={group} does not divide {name}'s {module.in_features} input features "
                    f"(use a group_size that divides {module.in_features}, e.g. 32 or 64)"
                )
        quantize_(model, _config(layout, group),
                  filter_fn=lambda mod, fqn: isinstance(mod, torch.nn.Linear) and fqn in targets)
        self.quantized = len(targets)
        return model.eval()

    def make_policy(self, tokenizer):
        return StaticCounters({"quantized_linears": float(self.quantized)})
