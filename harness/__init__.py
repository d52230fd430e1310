"""Benchmark harness for LLM efficiency techniques: accuracy and cost in the same run, per sample."""

import logging as _logging

__version__ = "0.1.0"

# torchao 0.18 logs a warning for every optional CUDA kernel it cannot load on a CPU build,
# and torch's pytree logs a deprecation for torchao's enums; both are noise for our users.
for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)
