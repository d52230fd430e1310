"""Time to first render of the dashboard's leaderboard on a large synthetic results root.

    .venv/bin/python benchmarks/dashboard_render.py [--root DIR] [--cells 1000] [--samples 1000] [--browser]

Writes (once, reused when present) ``--cells`` synthetic cells over 10 runs with ``--samples``
sample rows each (1,000 × 1,000 = 1,000,000 sample rows by default; made-up numbers), then
measures, each in a fresh interpreter so nothing is cached in memory:

- ``cold``: the leaderboard script run (Streamlit's AppTest) with an empty cache: the server's
  work for the first visitor after a start, dominated by reading every cell file;
- ``warm``: the same script run again in that process (the data cache is hit): what every later
  visit and every refresh without new files costs;
- ``browser`` (``--browser``, needs /usr/bin/chromium): ``streamlit run`` plus headless Chromium,
  from navigation to the first leaderboard table on screen, for the first visit (cold server)
  and a second one (warm).

The samples are never read for the leaderboard (only the Variant page reads one cell's); the
goal is a first render under 2 s. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"

_APPTEST = r"""
import json, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=600)
t1 = time.perf_counter()
at.run()
t2 = time.perf_counter()
assert not at.exception, at.exception
rows = sum(len(d.value) for d in at.dataframe if "accuracy" in d.value.columns)
at.run()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "cold_s": t2 - t1, "warm_s": t3 - t2, "rows": rows}))
"""


def _ensure_results(root: Path, cells: int, samples: int) -> None:
    marker = root / f".synthetic-{cells}x{samples}"
    if marker.exists():
        return
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty and holds no synthetic results of this size: pass a fresh --root")
    sys.path.insert(0, str(REPO))
    from dashboard.synthetic import write_large

    t = time.perf_counter()
    write_large(root, n_cells=cells, samples_per_cell=samples)
    marker.write_text("ok\n")
    print(f"wrote {cells} cells × {samples} samples to {root} in {time.perf_counter() - t:.1f} s")


def _apptest(root: Path) -> dict:
    env = dict(os.environ, HARNESS_RESULTS=str(root))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", _APPTEST, str(APP)], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _browser(root: Path) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--", "--results", str(root)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        times = []
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", headless=True,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )
            for _ in range(2):
                page = ctx.new_page()
                page.set_default_timeout(300_000)
                t = time.perf_counter()
                page.goto(url)
                page.locator('[data-testid="stDataFrame"]').first.wait_for(state="visible")
                times.append(time.perf_counter() - t)
                page.close()
            ctx.close()
        return times[0], times[1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "harness_dashboard_bench")
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1000, help="sample rows per cell")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--browser", action="store_true", help="also time it in headless Chromium")
    args = ap.parse_args()
    _ensure_results(args.root, args.cells, args.samples)
    runs = [_apptest(args.root) for _ in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("import_s", "cold_s", "warm_s")}
    print(f"results: {args.cells} cells, {args.cells * args.samples:,} sample rows under {args.root}")
    print(f"leaderboard rows shown (best per variant): {runs[0]['rows']}")
    print(f"median of {args.repeats} fresh interpreters:")
    print(f"  import streamlit + AppTest : {med['import_s']:.2f} s")
    print(f"  cold first render           : {med['cold_s']:.2f} s   (reads every cell file)")
    print(f"  warm render (cache hit)     : {med['warm_s']:.2f} s")
    if args.browser:
        cold, warm = _browser(args.root)
        print(f"  browser, first visit        : {cold:.2f} s   (navigation → first table visible)")
        print(f"  browser, second visit       : {warm:.2f} s")
    print("goal: under 2 s")


if __name__ == "__main__":
    main()
