"""harness.results must import no torch and no pynvml (the dashboard and CI read results anywhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_results_imports_no_torch_no_pynvml():
    code = (
        "import harness.results, harness.results.schema, harness.results.store, "
        "harness.results.reader, harness.core.stats, harness.results.pareto, "
        "harness.results.summary; import sys; "
        "bad = [m for m in ('torch', 'pynvml') if m in sys.modules]; "
        "assert not bad, f'harness.results imported {bad}'"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
