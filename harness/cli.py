"""Command line: ``python -m harness {run,validate,ls,grade,summary,gate,serve}``.

Exit codes: 0 success, 1 a run finished with failed cells / a regrade disagreed / the gate found
a regression, 2 unusable input (invalid suite, unknown task, missing run, schema mismatch).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

_ERR_TTY = sys.stderr.isatty()
# Off a terminal (a log, CI, a pipe) errors are plain lines: no boxes around usage errors, no
# rich tracebacks, and no wrapping (one error = one line, whatever its length).
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmark LLM efficiency techniques.",
                  **({} if _ERR_TTY else {"rich_markup_mode": None, "pretty_exceptions_enable": False}))
# Tables stay readable when output goes to a file or CI log (rich would default to 80 columns).
console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, width=None if _ERR_TTY else 200, soft_wrap=not _ERR_TTY)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _env_int(value: Optional[str]) -> Optional[int]:
    return int(value) if value not in (None, "") else None


def _check_device_flag(device: Optional[str]) -> None:
    """Fail (rc 2) on a ``--device`` that is not auto, cpu, cuda or cuda:N."""
    from harness.core.refs import DEVICE_PATTERN

    if device is not None and not re.match(DEVICE_PATTERN, device):
        _fail(f"--device {device!r}: use auto, cpu, cuda or cuda:N")


def _check_port(host: str, port: int) -> None:
    """Fail (rc 2) unless ``host:port`` can be bound now (before any model loads)."""
    import socket

    if not 0 <= port <= 65535:
        _fail(f"--port must be 0..65535, got {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):  # SO_REUSEADDR, as uvicorn binds
            pass
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server on that port? choose one with --port)")


@app.command()
def run(
    suite: str = typer.Argument(..., help="suite name (suites/<name>.yaml) or path"),
    results: Path = typer.Option(Path("results"), "--results", "-o", help="results root"),
    limit: Optional[str] = typer.Option(None, "--limit", "-n", help="samples per task (default: the suite's)"),
    force: bool = typer.Option(False, "--force", help="re-run cells that are already complete"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N (default: the suite's)"),
    telemetry_series: bool = typer.Option(
        False, "--telemetry-series", help="also write each cell's power/memory time series to <run>/telemetry/"
    ),
    executor: Optional[str] = typer.Option(None, "--executor", help="local | ray (default: the suite's executor, else local)"),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="ray: auto | ray://host:10001 (default: start a local Ray instance)"
    ),
    max_retries: Optional[int] = typer.Option(None, "--max-retries", min=0, help="ray: retries of a lost worker's cells"),
) -> None:
    """Run (or resume) a suite and print the summary table."""
    from harness.config.suite import SuiteError, resolve_path
    from harness.executors.base import ExecutorUnavailable
    from harness.runner import run_suite
    from harness.tasks import DataError

    try:
        n = _env_int(limit)
    except ValueError:
        _fail(f"--limit must be a positive integer, got {limit!r}")
    if n is not None and n < 1:
        _fail(f"--limit must be a positive integer, got {limit!r}")
    _check_device_flag(device)
    try:
        report = run_suite(
            resolve_path(suite),
            results,
            limit=n,
            force=force,
            device=device,
            console=console,
            telemetry_series=telemetry_series,
            executor=executor,
            executor_options={"address": ray_address, "max_retries": max_retries},
        )
    except (SuiteError, DataError, ExecutorUnavailable) as exc:
        _fail(str(exc))
    if report.failed:
        err.print(f"[yellow]{report.failed} cell(s) failed: their errors are under the table above "
                  f"(again: python -m harness summary {report.run_dir})[/]")
        raise typer.Exit(1)


@app.command()
def validate(suites: list[str] = typer.Argument(..., help="suite names or paths")) -> None:
    """Validate suite files without loading anything; one line per suite saying what it runs."""
    from harness.config.suite import SuiteError, describe, load, resolve_path

    for name in suites:
        try:
            s = load(resolve_path(name))
        except SuiteError as exc:
            _fail(str(exc))
        console.print(f"[green]ok[/] {resolve_path(name)}: {describe(s)}")


def _adapter_table(title: str, registry) -> Table:
    """One row per registered adapter: name, paper (arXiv id), params with defaults, counters."""
    table = Table(title=title, show_lines=True)
    for col in ("name", "paper", "params (default) — description", "counters"):
        table.add_column(col)
    for name in registry.names():
        cls = registry.get(name)
        params = "\n".join(
            f"{field}={info.default!r} — {info.description or ''}" for field, info in cls.Params.model_fields.items()
        )
        paper = f"{cls.paper} (arXiv {cls.arxiv})" if cls.arxiv else (cls.paper or "reference")
        table.add_row(name, paper, params or "—", "\n".join(cls.counters) or "—")
    return table


@app.command("ls")
def list_adapters() -> None:
    """List adapters (paper, params with defaults, counters) and tasks, from the registries."""
    from harness.adapters import ADAPTERS
    from harness.finetune import FINETUNE_ADAPTERS
    from harness.tasks import TASKS

    console.print(_adapter_table("adapters", ADAPTERS))
    console.print(_adapter_table("fine-tuning adapters (finetune: sections)", FINETUNE_ADAPTERS))
    tasks = Table(title="tasks")
    for col in ("name", "version", "docs", "description"):
        tasks.add_column(col)
    for _, spec in TASKS.items():
        tasks.add_row(spec.name, spec.version, str(spec.size), spec.description)
    from harness.tasks.proving import PROVING_TASKS

    for _, spec in PROVING_TASKS.items():  # prove: sections only
        tasks.add_row(spec.name, spec.version, str(spec.size), f"(prove: sections) {spec.description}")
    console.print(tasks)


@app.command()
def grade(
    task: Optional[str] = typer.Argument(None, help="task name (gsm8k, math500, math, minif2f_metamath...)"),
    prediction: Optional[str] = typer.Option(None, "--prediction", "-p", help="model output text (proving: the proof)"),
    reference: Optional[str] = typer.Option(None, "--reference", "-r", help="gold answer (proving: the problem name)"),
    truncated: bool = typer.Option(False, "--truncated", help="the output stopped at the token cap (finish_reason=length)"),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="re-grade every sample of this run directory"),
    lean_repl: Optional[str] = typer.Option(None, "--lean-repl", help="Lean tasks: a Lean + Mathlib project folder"),
    lean_url: Optional[str] = typer.Option(None, "--lean-url", help="Lean tasks: a Kimina Lean Server URL"),
) -> None:
    """Grade one prediction (prints the extracted answer and the reason), or re-grade a run's
    samples and report disagreements. A proving task checks the proof: exit 0 proved, 1 not
    proved, 2 unusable input."""
    from harness.tasks import UnknownNameError
    from harness.tasks import grade as grade_one
    from harness.tasks.proving import PROVING_TASKS

    if run_dir is not None:
        _regrade_run(run_dir)
        return
    if task is None or prediction is None or reference is None:
        _fail("give TASK --prediction TEXT --reference TEXT [--truncated], or --run RUN_DIR")
    if task in PROVING_TASKS:
        _grade_proof(task, prediction, reference, {"lean_repl": lean_repl, "lean_url": lean_url})
        return
    try:
        result = grade_one(task, prediction, reference, truncated=truncated)
    except UnknownNameError as exc:
        _fail(str(exc))
    from rich.markup import escape

    console.print(escape(f"extracted: {result.extracted!r}\nreference: {result.reference!r}"))
    console.print(("[green]correct[/]" if result.correct else "[red]wrong[/]") + escape(f" ({result.reason})"))


def _grade_proof(task: str, proof: str, problem: str, settings: dict) -> None:
    """Check one proof with the task's checker; exit 0 proved, 1 not proved, 2 unusable input."""
    from harness.kinds.prove.checkers import CheckerSetupError
    from harness.kinds.prove.grade import UnknownProblem, grade_one
    from harness.tasks import DataError

    try:
        verdict, checker = grade_one(task, proof, problem, settings)
    except (UnknownProblem, DataError, CheckerSetupError) as exc:
        _fail(str(exc))
    color = "green" if verdict.proved else "red"
    console.print(f"[{color}]{verdict.status}[/] ({verdict.message}); checker {checker.get('checker')} "
                  f"{checker.get('version') or checker.get('lean_version') or ''}, {verdict.time_s:.2f} s", highlight=False)
    if not verdict.proved:
        raise typer.Exit(1)


def _regrade_run(run_dir: Path) -> None:
    """Re-grade every stored sample with its cell kind's grader; exit 1 on any disagreement.
    Kinds whose grades cannot be recomputed from a stored row (τ² rewards) are named and skipped."""
    from harness.core.cell import KINDS
    from harness.kinds import kind_instances
    from harness.results import read_cells, read_samples

    if not run_dir.is_dir():
        _fail(f"run directory not found: {run_dir}")
    samples = read_samples(run_dir)
    if samples.empty:
        _fail(f"no samples under {run_dir}")
    cells = read_cells(run_dir)
    kind_of = dict(zip(cells["cell_hash"], cells.get("cell_kind", "eval").fillna("eval"))) if not cells.empty else {}
    kinds = kind_instances()
    disagree, regraded, skipped = [], 0, {}
    for row in samples.to_dict("records"):
        name = kind_of.get(row["cell_hash"], "eval")
        if name not in KINDS:
            skipped[name] = skipped.get(name, 0) + 1
            continue
        try:
            grade = kinds[name].regrade(row)
        except NotImplementedError:
            skipped[name] = skipped.get(name, 0) + 1
            continue
        if grade is None:  # no per-sample grade (e.g. STS-B regression)
            continue
        regraded += 1
        correct, reason = grade
        if float(correct) != float(row["correct"]):
            disagree.append((row["variant"], row["task"], row["doc_id"], row["correct"], correct, reason))
    console.print(f"re-graded {regraded} of {len(samples)} samples: {len(disagree)} disagreement(s)")
    for name, n in sorted(skipped.items()):
        console.print(f"  {n} sample(s) of {name} cells not re-gradable (their grades are not recomputable from the stored rows)")
    for d in disagree:
        console.print(f"  {d[0]} {d[1]} doc {d[2]}: stored {d[3]} now {d[4]} ({d[5]})")
    if disagree:
        raise typer.Exit(1)


@app.command()
def summary(
    results: Path = typer.Argument(Path("results"), help="results root or run directory"),
    wide: bool = typer.Option(False, "--wide", help="add the totals (energy, output tokens, decode time), "
                              "latency p90, TTFT p50 and throughput"),
) -> None:
    """Print the summary table of every cell under a results root (80 columns; --wide for more)."""
    from harness.results import read_cells, summary_table
    from harness.results.summary import spread_table

    hint = (f"give a results root (it holds runs/<run_id>/) or a run directory; make one with "
            f"`python -m harness run smoke --results {results}`")
    if not results.exists():
        _fail(f"no results at {results}: {hint}")
    cells = read_cells(results)
    if cells.empty:
        _fail(f"no cells under {results}: {hint}")
    console.print(summary_table(cells, wide=wide))
    spread = spread_table(cells)
    if spread is not None:
        console.print(spread)


@app.command()
def gate(
    baseline: Path = typer.Argument(..., help="baseline run directory (e.g. results/baselines/smoke)"),
    candidate: Path = typer.Argument(..., help="candidate run directory (or a results root)"),
    suite: Optional[Path] = typer.Option(
        None, "--suite", help="suite YAML for gate settings and length_changing variants (default: the runs' run.json)"
    ),
    report: Optional[Path] = typer.Option(None, "--report", help="also write the markdown report here"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the JSON report here"),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="significance level of the paired accuracy test"),
    acc_tol: Optional[float] = typer.Option(None, "--acc-tol", help="accuracy drop tolerated, fraction (0.01 = 1 point)"),
    length_band: Optional[str] = typer.Option(None, "--length-band", help="LOW,HIGH ratio of mean output tokens, e.g. 0.9,1.1"),
    trunc_tol: Optional[float] = typer.Option(None, "--trunc-tol", help="truncation-rate rise tolerated, fraction"),
    min_repeats: Optional[int] = typer.Option(None, "--min-repeats", help="repeats per side needed to compare costs"),
    no_cost: bool = typer.Option(False, "--no-cost", help="skip latency/energy/memory checks"),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="report baseline cells missing from the candidate, don't fail"),
) -> None:
    """Regression gate: compare a candidate run with a baseline run (exit 0 pass, 1 regression, 2 unusable input)."""
    from harness.gate import GateInputError, run_gate
    from harness.gate.report import unusable_json, unusable_markdown

    overrides: dict = {"alpha": alpha, "accuracy_tolerance": acc_tol, "truncation_tolerance": trunc_tol,
                       "min_repeats": min_repeats}
    if no_cost:
        overrides["cost"] = False
    if allow_missing:
        overrides["fail_on_missing"] = False

    def write(markdown: str, data: str) -> None:
        for path, text in ((report, markdown), (json_out, data)):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")

    try:
        if length_band is not None:
            try:
                low, high = (float(x) for x in length_band.split(","))
            except ValueError:
                raise GateInputError(f"--length-band must be LOW,HIGH (e.g. 0.9,1.1), got {length_band!r}") from None
            overrides["length_band"] = (low, high)
        result = run_gate(baseline, candidate, suite=suite, overrides=overrides)
    except GateInputError as exc:
        reason = str(exc).replace("\n", " ")
        write(unusable_markdown(reason), unusable_json(reason))
        _fail(reason)
    markdown = result.markdown()
    write(markdown, result.json())
    typer.echo(markdown)
    raise typer.Exit(result.exit_code)


@app.command()
def serve(
    suite: str = typer.Argument(..., help="suite name (suites/<name>.yaml) or path"),
    variant: list[str] = typer.Option(..., "--variant", "-v", help="variant to serve (repeatable); served under its name"),
    model_ref: Optional[str] = typer.Option(None, "--model-ref", help="base model (default: the suite's first)"),
    host: str = typer.Option("127.0.0.1", help="bind address (loopback by default)"),
    port: int = typer.Option(8000, help="TCP port"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="HARNESS_SERVE_API_KEY", help="require Authorization: Bearer KEY"),
    log: Optional[Path] = typer.Option(None, "--log", help="append one JSON line per request here"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N (default: the suite's)"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="completion cap when a request sets none (default: the suite's max_new_tokens; agents.defaults.max_tokens for an agents variant)"),
    max_prompt_tokens: Optional[int] = typer.Option(None, "--max-prompt-tokens", help="prompt budget; older turns are dropped beyond it"),
    telemetry: bool = typer.Option(True, "--telemetry/--no-telemetry", help="an energy window per request"),
    log_level: str = typer.Option("info", "--log-level", help="debug | info | warning | error: info prints one line per request (status, tokens, latency)"),
    calibration_task: Optional[str] = typer.Option(
        None, "--calibration-task",
        help="generation task whose docs the variants are prepared on before serving (needed by variants "
        "that calibrate, e.g. think_budget modes medium/low)",
    ),
) -> None:
    """Serve suite variants behind an OpenAI-compatible API (POST /v1/chat/completions).

    Each variant is served as it is evaluated (decode policy, system prompt, prefill). A variant
    that must be calibrated on a task is prepared on ``--calibration-task`` first; without it,
    serve exits 2 before any model loads.
    """
    import uvicorn

    from harness.models import ModelError
    from harness.serve.app import configure_logging, create_app
    from harness.serve.backend import check_servable, suite_backends
    from harness.serve.protocol import RequestLog
    from harness.runner import check_device
    from harness.config.suite import SuiteError, load, resolve_path
    from harness.tasks import DataError

    _check_device_flag(device)
    try:
        configure_logging(log_level)
    except ValueError as exc:
        _fail(f"--log-level: {exc}")
    if max_tokens is not None and max_tokens < 1:
        _fail(f"--max-tokens must be a positive integer, got {max_tokens}")
    if max_prompt_tokens is not None and max_prompt_tokens < 1:
        _fail(f"--max-prompt-tokens must be a positive integer, got {max_prompt_tokens}")
    try:
        s = load(resolve_path(suite))
        check_device(device or s.defaults.device)
        check_servable(s, list(variant), calibration_task)
    except (SuiteError, ValueError) as exc:
        _fail(str(exc))
    _check_port(host, port)
    try:
        backends = suite_backends(s, list(variant), model_ref=model_ref, device=device, max_tokens=max_tokens,
                                  max_prompt_tokens=max_prompt_tokens, calibration_task=calibration_task)
    except (SuiteError, ValueError, ModelError, DataError) as exc:
        _fail(str(exc))
    for name, backend in backends.items():
        if backend.preparation.get("calibration_json"):
            record = json.loads(backend.preparation["calibration_json"])
            err.print(
                f"{name}: calibrated on {record['task']} {record['slice']}: High mean "
                f"{record['mean_reasoning_tokens']:.1f} reasoning tokens, budget {record['reasoning_budget']}",
                highlight=False,
            )
    tel = None
    if telemetry:
        from harness.telemetry import Telemetry

        tel = Telemetry(next(iter(backends.values())).model.device.type)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    application = create_app(backends, log=RequestLog(log), api_key=api_key, telemetry=tel)
    err.print(f"serving {', '.join(backends)} at http://{host}:{port}/v1" + (" (bearer key required)" if api_key else ""))
    try:
        uvicorn.run(application, host=host, port=port, log_level="debug" if log_level == "debug" else "warning",
                    access_log=False)
    finally:
        if tel is not None:
            tel.close()


@app.command()
def env() -> None:
    """Print the settings the harness reads from the environment."""
    from harness.models import cache_dir

    console.print(json.dumps({"HARNESS_DATA_DIR": os.environ.get("HARNESS_DATA_DIR"), "cache_dir": str(cache_dir())}))


def main() -> None:  # pragma: no cover
    app()
