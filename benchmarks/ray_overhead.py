"""The ray executor's overhead against the local executor, measured in one run.

For a suite, alternating rounds: (A) the local executor in this process, (B) the ray executor
on a local Ray instance started beforehand (its start-up timed and reported separately, not
counted in B). Each round writes into a fresh results root, so every cell runs. Reported: wall
time of each run, the B/A ratio per round, and the Ray start-up time. Goal (issue 15): the
ray executor's wall time at most 1.10 × the local one on the smoke suite, start-up aside.

Threads: ``--local-threads`` torch threads for the local run; each Ray worker gets
``resources.num_cpus`` (1 by default) threads, and a 2-core machine runs two workers.

Usage: ``.venv/bin/python benchmarks/ray_overhead.py [--suite smoke] [--rounds 2] [--limit N] [--local-threads 2]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="smoke")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--local-threads", type=int, default=2)
    args = ap.parse_args()

    import ray
    import torch

    from harness.config.suite import resolve_path
    from harness.runner import run_suite

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    suite = resolve_path(args.suite)
    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    startup_s = time.perf_counter() - t0
    local, remote = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            torch.set_num_threads(args.local_threads)
            t = time.perf_counter()
            a = run_suite(suite, Path(tmp) / f"local{r}", limit=args.limit, console=quiet)
            local.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = run_suite(suite, Path(tmp) / f"ray{r}", limit=args.limit, console=quiet, executor="ray")
            remote.append(time.perf_counter() - t)
            assert a.failed == b.failed == 0, (a, b)
            print(f"round {r}: local {local[-1]:.1f} s, ray {remote[-1]:.1f} s, ratio {remote[-1] / local[-1]:.3f}",
                  flush=True)
    ray.shutdown()
    ratios = [b / a for a, b in zip(local, remote)]
    print(f"suite {args.suite} (limit {args.limit}), {a.total} cells, "
          f"local threads {args.local_threads}, Ray CPUs {int(os.cpu_count() or 0)}")
    print(f"Ray start-up (ray.init, not in the ray times): {startup_s:.1f} s")
    print(f"local: {statistics.median(local):.1f} s median; ray: {statistics.median(remote):.1f} s median; "
          f"ray/local ratio median {statistics.median(ratios):.3f} (rounds: {', '.join(f'{x:.3f}' for x in ratios)})")


if __name__ == "__main__":
    main()
