"""The dashboard in a real browser: `streamlit run` on a free loopback port, driven by Debian's
headless Chromium through Playwright (never a downloaded browser). Reads the Pareto front from
the page's markup before and after switching the cost axis, then the depth curves of a training
task, and saves screenshots."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} not found (install Debian's chromium: apt-get install -y chromium; .ci/run does)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")

from dashboard import synthetic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUN = "20260101T000000Z-synth-0001"
# (n_correct of 10, energy per token J, latency p50 s): the front differs between the two axes
CASE = {"A": (8, 1.0, 5.0), "B": (6, 0.5, 1.0), "C": (7, 0.4, 6.0), "D": (5, 2.0, 0.5)}
ENERGY_FRONT = {"A", "C"}
LATENCY_FRONT = {"A", "B", "D"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _streamlit(root: Path, tmp_path: Path):
    """``streamlit run dashboard/app.py`` on a free loopback port over ``root``; yields its URL."""
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
            "--server.address", "127.0.0.1", "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
            "--", "--results", str(root),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "results"
    synthetic.write_run(
        root,
        RUN,
        [
            synthetic.cell(RUN, variant=v, adapter="think_budget" if v in "AC" else "int8", params={"v": v},
                           n=10, n_correct=k, energy_per_token_j=e, latency_p50_s=lat)
            for v, (k, e, lat) in CASE.items()
        ]
        + [  # a training cell with depth exits (sorted_depth), on another task
            synthetic.cell(RUN, variant="sorted-depth", adapter="sorted_depth", task="sst2", n=10, n_correct=9,
                           cell_kind="finetune", task_metric="accuracy", task_metric_value=0.9,
                           counter_accuracy_depth_2=0.6, counter_accuracy_depth_4=0.75, counter_accuracy_depth_6=0.9)
        ],
    )
    with _streamlit(root, tmp_path) as url:
        yield url


def _front(page) -> tuple[str, set[str]]:
    table = page.locator(".st-key-pareto-front table.pareto-front")
    axis = table.get_attribute("data-axis")
    rows = table.locator("tr.front-row")
    return axis, {rows.nth(i).get_attribute("data-variant") for i in range(rows.count())}


def test_pareto_front_in_chromium(served: str, tmp_path: Path):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1300},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(90_000)
            page.goto(f"{served}/pareto")
            page.locator(".js-plotly-plot").first.wait_for(state="visible")
            page.locator('.st-key-pareto-front table[data-axis="energy_per_sample_j"]').wait_for()
            assert _front(page) == ("energy_per_sample_j", ENERGY_FRONT)  # energy_j / n, as the CLI summary
            assert "modelled estimate" in page.locator(".js-plotly-plot .xtitle").first.text_content()

            box = page.locator(".st-key-pareto_axis")
            box.click()
            page.get_by_role("option", name="Latency p50").click()
            page.locator('.st-key-pareto-front table[data-axis="latency_p50_s"]').wait_for()
            page.locator(".js-plotly-plot").first.wait_for(state="visible")
            assert _front(page) == ("latency_p50_s", LATENCY_FRONT)
            time.sleep(1.0)  # let the chart finish its transition before the picture
            shot = tmp_path / "pareto_latency.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            # a task whose training cells report per-depth metrics: the depth curves section
            page.locator(".st-key-pareto_task").click()
            page.get_by_role("option", name="sst2").click()
            page.locator(".st-key-depth_chart .js-plotly-plot").wait_for(state="visible")
            assert "exit depth" in page.locator(".st-key-depth_chart .js-plotly-plot .xtitle").first.text_content()
            assert page.locator(".st-key-depth_chart .js-plotly-plot .scatterlayer .trace").count() >= 1
            time.sleep(1.0)
            shot = tmp_path / "depth_curves.png"
            page.locator(".st-key-depth_chart").screenshot(path=str(shot))  # scrolled into view
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()


# a reasoning-full-like table: long variant names, every adapter's counters, warm-up and GPU memory
WIDE = {"entropy-switch-0.5b": (3, 0.9, 4.0), "spec-prompt-lookup": (4, 0.7, 2.0), "budget-64": (2, 0.3, 1.0),
        "early-exit-0.98": (3, 0.5, 3.0), "int8": (4, 0.6, 5.0), "baseline": (4, 1.0, 5.5)}


def _grid_state(page) -> list[dict]:
    """Each leaderboard grid: its box, its scroller's widths and the column headers in the DOM."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"]')).map(df => {
        const sc = df.querySelector('.dvn-scroller');
        const box = df.getBoundingClientRect();
        return {right: box.right, scrollWidth: sc.scrollWidth, clientWidth: sc.clientWidth,
                headers: Array.from(df.querySelectorAll('[role=columnheader]')).map(h => h.textContent.trim())};
    })""")


def test_leaderboard_columns_reachable_at_1400px_and_pareto_names_on_hover(tmp_path: Path):
    root = tmp_path / "results"
    counters = {f"counter_{name}_mean": 1.5 for name in (
        "reasoning_tokens", "answer_tokens", "forced_answer", "layers_executed", "exit_layer", "switches",
        "large_model_token_share", "drafts_proposed", "drafts_accepted", "acceptance_length")}
    synthetic.write_run(root, RUN, [
        synthetic.cell(RUN, variant=v, adapter=v.split("-")[0], params={"v": v}, n=10, n_correct=k,
                       energy_per_token_j=e, latency_p50_s=lat, warmup_time_s=1.5, peak_allocated_bytes=2e9,
                       **counters)
        for v, (k, e, lat) in WIDE.items()
    ])
    with _streamlit(root, tmp_path) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(90_000)
            page.goto(url)
            page.locator('[data-testid="stDataFrame"] .dvn-scroller').first.wait_for(state="visible")
            time.sleep(1.0)
            (grid,) = _grid_state(page)
            # the default columns fit beside the sidebar: nothing hidden off to the right
            assert grid["scrollWidth"] <= grid["clientWidth"] + 2, grid
            assert grid["right"] <= 1400
            assert grid["headers"][-1] == "peak RSS (MiB)", grid["headers"]
            page.screenshot(path=str(tmp_path / "leaderboard_1400.png"), full_page=True)

            # every other column is one pick away, and the grid then scrolls to its last one
            picker = page.locator(".st-key-leaderboard_extra input")
            for name in ("params", "run", "latency p90 (s)"):  # the list is long: type to find
                picker.click()
                picker.fill(name)
                page.get_by_role("option", name=name, exact=True).click()
            page.keyboard.press("Escape")
            page.wait_for_function("""() => { const sc = document.querySelector('[data-testid="stDataFrame"] .dvn-scroller');
                                              return sc && sc.scrollWidth > sc.clientWidth + 2; }""")
            page.evaluate("""() => { const sc = document.querySelector('[data-testid="stDataFrame"] .dvn-scroller');
                                     sc.scrollLeft = sc.scrollWidth; }""")
            page.wait_for_function("""() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"] [role=columnheader]'))
                                              .some(h => h.textContent.trim() === 'run')""")

            # Pareto: no text beside the points (labels of close points overlapped); the name on hover
            page.goto(f"{url}/pareto")
            page.locator(".js-plotly-plot").first.wait_for(state="visible")
            time.sleep(1.0)
            assert page.locator(".js-plotly-plot .scatterlayer .textpoint").count() == 0
            point = page.locator(".js-plotly-plot .scatterlayer .trace .points path").first
            point.hover(force=True)
            page.locator(".js-plotly-plot .hoverlayer .hovertext").first.wait_for(state="visible")
            hover = page.locator(".js-plotly-plot .hoverlayer").text_content()
            assert any(v in hover for v in WIDE), hover
            page.screenshot(path=str(tmp_path / "pareto_hover.png"), full_page=True)
        finally:
            browser.close()
