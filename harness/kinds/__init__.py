"""Cell kinds: each package here owns one section of a suite, its cells and its runner.

* ``eval`` — a technique variant evaluated by lm-eval on a task (the suite's top-level
  ``models``/``tasks``/``variants``);
* ``finetune`` — a fine-tuning technique trained and evaluated on GLUE (``finetune:``);
* ``agents`` — τ²-bench through the OpenAI-compatible server (``agents:``).

Importing this package registers them in :data:`KINDS` (discovered: a new kind is a new
package here, with a class registered by ``@KINDS.register("name")``).
"""

from harness.core.cell import KINDS, CellKind
from harness.core.registry import discover

discover(__name__)

__all__ = ["KINDS", "CellKind", "kind_instances"]


def kind_instances() -> dict[str, CellKind]:
    """A fresh instance of every registered kind, by name (kinds keep per-run caches)."""
    return {name: KINDS.get(name)() for name in KINDS.names()}
