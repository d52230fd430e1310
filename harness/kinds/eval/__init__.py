"""The ``eval`` cell kind: a technique variant evaluated by lm-eval on a harness task.

Its section is the suite's top level (``models``, ``tasks``, ``variants``, ``defaults``); one
cell = model × variant × task × repeat. Running a cell: :mod:`.runner`; its sample rows:
:mod:`.runner` (generation) and :mod:`.choice_rows` (log-likelihood).
"""

from __future__ import annotations

from harness.config.errors import SuiteError
from harness.core.cell import KINDS, Cell, CellKind
from harness.core import refs
from harness.kinds.checks import adapter_instance, check_models, check_unique, model_grid


@KINDS.register("eval")
class EvalKind(CellKind):
    """Evaluation cells (the suite's top-level models × variants × tasks × repeats)."""

    section = None  # the top level
    order = 0

    def describe(self, suite, section) -> str:
        return (f"{len(suite.models)} model(s) × {len(suite.variants)} variant(s) × {len(suite.tasks)} task(s) × "
                f"{suite.defaults.repeats} repeat(s)")

    def check(self, suite, section, source: str) -> None:
        """Adapters and params, duplicate variants, models, token caps, task names, and that a
        decode-loop technique is not paired with a log-likelihood task."""
        from harness.tasks import get_task

        adapters = [adapter_instance(v.adapter, v.params, source, f"variants[{i}]") for i, v in enumerate(suite.variants)]
        check_unique(
            [(v.name, [v.adapter, a.params.model_dump(mode="json"), v.dtype, v.batch_size, bool(v.compile)])
             for v, a in zip(suite.variants, adapters)],
            source, "variants", "adapter, params, dtype, batch size and compile",
        )
        check_models(suite.models, source, "models")
        for i, adapter in enumerate(adapters):
            try:
                adapter.check(suite.defaults.max_new_tokens)
            except ValueError as exc:
                raise SuiteError(f"{source}: variants[{i}].params: {exc}") from None
        for i, task in enumerate(suite.tasks):
            try:
                get_task(task)
            except KeyError as exc:
                from harness.tasks.proving import PROVING_TASKS

                if task in PROVING_TASKS:
                    raise SuiteError(f"{source}: tasks[{i}]: {task!r} is a proving task: put it in a prove: section "
                                     "(its attempts are checked by a proof checker, not graded by lm-eval)") from None
                raise SuiteError(f"{source}: tasks[{i}]: {exc}") from None
        scored = [t for t in suite.tasks if get_task(t).output_type != "generate_until"]
        if scored and suite.defaults.sampling:
            raise SuiteError(
                f"{source}: defaults: samples/temperature/top_p apply to generation tasks only; "
                f"the log-likelihood task(s) {', '.join(scored)} cannot sample; put them in a greedy suite"
            )
        for i, (variant, adapter) in enumerate(zip(suite.variants, adapters)):
            if scored and not adapter.supports_loglikelihood:
                raise SuiteError(
                    f"{source}: variants[{i}].adapter: {variant.adapter!r} works in the decode loop and has no "
                    f"log-likelihood, so it cannot run the log-likelihood task(s) {', '.join(scored)}; "
                    "put it in a suite of generation tasks"
                )

    def expand(self, suite, section, limit: int | None, model_ids: dict[str, str]) -> list[Cell]:
        """Cells in run order: model, dtype (fp32 first), variant, task, repeat. Their settings
        hold ``samples``, ``temperature`` and ``top_p``; the identity's generation settings are
        ``{max_new_tokens, do_sample: False}`` for greedy cells and gain ``do_sample: True`` and
        the three sampling keys for sampling cells."""
        from harness.adapters import ADAPTERS
        from harness.tasks import get_task

        d = suite.defaults
        sampling = {"samples": d.samples, "temperature": d.temperature, "top_p": d.top_p}
        generation = {"max_new_tokens": d.max_new_tokens, "do_sample": False}
        if d.sampling:  # the sampling keys enter the identity only when sampling is on
            generation = {"max_new_tokens": d.max_new_tokens, "do_sample": True, **sampling}
        variants = sorted(suite.variants, key=lambda v: v.dtype != "fp32")
        cells = []
        for ref, variant, params in model_grid(suite.models, variants, model_ids,
                                               lambda r: refs.resolve(r).canonical_id, ADAPTERS):
            batch_size = variant.batch_size or d.batch_size
            for task in suite.tasks:
                for repeat in range(d.repeats):
                    cells.append(Cell(
                        suite=suite.name, model_ref=ref, model_id=model_ids[ref], variant=variant, params=params,
                        task=task, task_version=get_task(task).version,
                        limit=limit if limit is not None else d.limit, batch_size=batch_size,
                        max_new_tokens=d.max_new_tokens, seed=d.seed, repeat=repeat, device=d.device,
                        warmup=d.warmup, kind="eval", settings=sampling,
                        identity_extra={"generation": generation, "batch_size": batch_size,
                                        **({} if variant.compile is None else {"compile": variant.compile})},
                    ))
        return cells

    def check_inputs(self, cells: list[Cell]) -> None:
        """Every task's data loads (``DataError`` naming the file otherwise)."""
        from harness.tasks import get_task

        for task in sorted({c.task for c in cells}):
            get_task(task).load_docs()

    def check_device(self, cells: list[Cell], device: str) -> None:
        """Each distinct variant's :meth:`harness.adapters.base.Adapter.check_device` on ``device``
        at its dtype (``SuiteError`` naming the variant)."""
        from harness.adapters import ADAPTERS

        seen = set()
        for cell in cells:
            key = (cell.variant.name, cell.variant.dtype)
            if key in seen:
                continue
            seen.add(key)
            try:
                ADAPTERS.get(cell.variant.adapter)(cell.params).check_device(device, cell.variant.dtype)
            except ValueError as exc:
                raise SuiteError(f"variant {cell.variant.name!r} on {device}: {exc}") from None

    def data_files(self, cells: list[Cell]) -> list[str]:
        from harness.tasks import get_task

        return sorted({get_task(c.task).data_relpath for c in cells})

    def load_base(self, ref: str, dtype: str, device: str):
        from harness import models

        return models.load(ref, dtype=dtype, device=device)

    def run(self, cell, base, telemetry, on_progress=None, files=None):
        from harness.kinds.eval.runner import run_eval_cell

        return run_eval_cell(cell, base, telemetry, on_progress, files)

    def reused_files(self, cell: Cell) -> list[str]:
        from harness.adapters import ADAPTERS

        return list(ADAPTERS.get(cell.variant.adapter).kept_files)

    def regrade(self, row):
        """The task's grader on the stored output and reference, told whether the output was
        truncated (``finish_reason == "length"``) as when it was graded (choice tasks: the
        predicted label name against the gold one)."""
        from harness.tasks import TaskSpec, get_task

        if row.get("correct") is None or row["correct"] != row["correct"]:
            return None
        spec = get_task(row["task"])
        if isinstance(spec, TaskSpec):
            grade = spec.grade(row["output_text"], row["reference"], truncated=row.get("finish_reason") == "length")
        else:
            grade = spec.grade(row["output_text"], row["reference"])
        return float(grade.correct), grade.reason

    def compression_ratio(self, base_bytes, cell_row):
        variant_bytes = cell_row.get("param_bytes")
        return base_bytes / variant_bytes if base_bytes and variant_bytes else None
