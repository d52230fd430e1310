"""The ``finetune`` cell kind: a fine-tuning technique (:mod:`harness.finetune`) trained on a
GLUE train split and evaluated on its validation split (the suite's ``finetune:`` section,
:mod:`.section`); one cell = encoder × variant × task × seed × repeat. Running: :mod:`.runner`.
"""

from __future__ import annotations

from harness.config.errors import SuiteError
from harness.core.cell import KINDS, Cell, CellKind
from harness.kinds.checks import adapter_instance, check_models, check_unique, model_grid
from harness.kinds.finetune.runner import FinetuneRunner
from harness.kinds.finetune.section import Finetune


@KINDS.register("finetune")
class FinetuneKind(FinetuneRunner, CellKind):
    """Training cells (``kind = "finetune"``)."""

    section = "finetune"
    order = 10
    Section = Finetune

    def describe(self, suite, f: Finetune) -> str:
        return (f"finetune: {len(f.models)} encoder(s) × {len(f.variants)} variant(s) × {len(f.tasks)} task(s) × "
                f"{len(f.defaults.seeds)} seed(s) × {f.defaults.repeats} repeat(s)")

    def data_files(self, cells: list[Cell]) -> list[str]:
        """The train split of every trained task and the validation split of each cell's task."""
        from harness.finetune.data import get_finetune_task

        out = set()
        for cell in cells:
            task = get_finetune_task(cell.task)
            out.add(f"glue/{task.name}/{task.validation_file}")
            for name in self._adapter(cell).tasks(cell.task):
                trained = get_finetune_task(name)
                out.add(f"glue/{trained.name}/{trained.train_file}")
        return sorted(out)

    def check(self, suite, section: Finetune, source: str) -> None:
        """Encoder references, task names, adapters and params, each adapter against each
        task, duplicate variants (nothing loads)."""
        from harness.finetune import FINETUNE_ADAPTERS
        from harness.finetune.data import get_finetune_task
        from harness.finetune.encoder import encoder_ref_problem

        where = "finetune"
        check_models(section.models, source, f"{where}.models", problem_of=encoder_ref_problem)
        for i, task in enumerate([*section.tasks, *section.per_task]):
            try:
                get_finetune_task(task)
            except KeyError as exc:
                key = f"tasks[{i}]" if i < len(section.tasks) else f"per_task.{task}"
                raise SuiteError(f"{source}: {where}.{key}: {exc.args[0]}") from None
        keys = []
        for i, variant in enumerate(section.variants):
            adapter = adapter_instance(variant.adapter, variant.params, source, f"{where}.variants[{i}]",
                                       registry=FINETUNE_ADAPTERS)
            for task in section.tasks:
                try:
                    adapter.check(task)
                    for other in adapter.tasks(task):
                        get_finetune_task(other)
                except (ValueError, KeyError) as exc:
                    raise SuiteError(f"{source}: {where}.variants[{i}].params: {exc.args[0] if exc.args else exc}") from None
            keys.append((variant.name, [variant.adapter, adapter.params.model_dump(mode="json"),
                                        variant.model_dump(exclude={"name", "adapter", "params"})]))
        check_unique(keys, source, f"{where}.variants", "adapter, params and settings")

    def expand(self, suite, section: Finetune, limit: int | None, model_ids: dict[str, str]) -> list[Cell]:
        """Training cells: encoder × variant × task × seed × repeat (``limit`` caps validation docs)."""
        from harness.finetune import FINETUNE_ADAPTERS
        from harness.finetune.data import get_finetune_task
        from harness.finetune.encoder import resolve_encoder

        cells = []
        for ref, variant, params in model_grid(section.models, section.variants, model_ids,
                                               lambda r: resolve_encoder(r).canonical_id, FINETUNE_ADAPTERS):
            for task in section.tasks:
                train = section.settings(variant, task)
                eval_limit = train.pop("eval_limit")
                for seed in section.defaults.seeds:
                    for repeat in range(section.defaults.repeats):
                        cells.append(Cell(
                            suite=suite.name, model_ref=ref, model_id=model_ids[ref], variant=variant,
                            params=params, task=task, task_version=get_finetune_task(task).version,
                            limit=limit if limit is not None else eval_limit, batch_size=train["batch_size"],
                            max_new_tokens=0, seed=seed, repeat=repeat, device=suite.defaults.device,
                            kind="finetune", settings=train,
                            identity_extra={"kind": "finetune", "train": train},
                        ))
        return cells

    def regrade(self, row):
        """The predicted label id (``extracted_answer``) against the gold one (``reference``)."""
        if row.get("correct") is None or row["correct"] != row["correct"]:
            return None
        same = str(row["extracted_answer"]) == str(row["reference"])
        return float(same), "label match" if same else "label mismatch"
