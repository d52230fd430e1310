"""``make baseline SUITE=smoke``: run a suite and install it as the committed baseline.

The suite runs into a fresh temporary results root; when every cell is ok, its run directory
(an ordinary one: ``run.json``, ``cells/``, ``samples/``) replaces whatever run directories were
under ``<into>/<suite name>/`` (default ``results/baselines/<suite>/``, which ``.gitignore`` lets
be committed). A run with a failed cell installs nothing and exits 1.

Usage: ``python -m harness.gate.baseline SUITE [--into results/baselines] [--limit N] [--device D]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["make_baseline", "main"]


def make_baseline(
    suite: str,
    into: Path | str = Path("results/baselines"),
    limit: int | None = None,
    device: str | None = None,
    console=None,
) -> Path:
    """Run ``suite`` and install its run directory under ``<into>/<suite name>/``.

    Returns the installed run directory.

    Raises:
        RuntimeError: if a cell failed (nothing installed).
        harness.config.errors.SuiteError: invalid suite.
    """
    from harness.results.reader import run_dirs
    from harness.runner import run_suite
    from harness.config.suite import load, resolve_path

    path = resolve_path(suite)
    name = load(path).name
    target = Path(into) / name
    with tempfile.TemporaryDirectory(prefix="harness-baseline-") as tmp:
        report = run_suite(path, Path(tmp) / "results", limit=limit, device=device, console=console)
        if report.failed:
            raise RuntimeError(f"{report.failed} cell(s) failed; baseline not installed (see {report.run_dir})")
        target.mkdir(parents=True, exist_ok=True)
        staging = target / f".{report.run_id}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(report.run_dir, staging)
        for old in run_dirs(target):
            shutil.rmtree(old)
        final = target / report.run_id
        staging.rename(final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.gate.baseline", description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="suite name (suites/<name>.yaml) or path")
    parser.add_argument("--into", type=Path, default=Path("results/baselines"), help="baselines root")
    parser.add_argument("--limit", type=int, default=None, help="samples per task (default: the suite's)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the suite's)")
    args = parser.parse_args(argv)
    from harness.config.suite import SuiteError

    try:
        final = make_baseline(args.suite, args.into, args.limit, args.device)
    except (SuiteError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SuiteError) else 1
    print(f"baseline installed: {final}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
