"""The ``agents:`` section of a suite: τ²-bench cells (model × variant × domain × repeat)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.config.fields import Strict, Variant


TAU2_DOMAINS = ("mock", "airline", "retail", "telecom")  # the domains whose data τ² ships


class AgentDefaults(Strict):
    """τ² run settings of every agent cell.

    Attributes:
        trials: simulations per task (τ²'s ``--num-trials``; pass^k needs ``k`` trials).
        max_steps: τ²'s step limit per simulation (a run hitting it scores 0).
        max_tokens: completion cap per request, for the agent and a local user simulator.
        max_errors: τ²'s limit of consecutive tool errors.
        concurrency: τ²'s ``--max-concurrency``; only 1: τ² sends no task id, so requests are
            attributed to a simulation by its time window, which needs one simulation at a time.
        seed: τ²'s seed; trial ``t`` of a task runs with ``seed + t`` (one simulation per
            subprocess, so requests can be attributed to it by time window).
        repeats: cells per (variant, domain) (timing spread).
        timeout_s: wall-clock limit of one simulation's subprocess (then an infrastructure error).
        data: ``bundled`` = τ²'s own data (matches its code); ``data_dir`` = the ``tau2/`` folder
            under ``HARNESS_DATA_DIR`` (passed to τ² as ``TAU2_DATA_DIR``).
    """

    trials: int = Field(1, ge=1)
    max_steps: int = Field(8, ge=1)
    max_tokens: int = Field(96, ge=1)
    max_errors: int = Field(10, ge=1)
    concurrency: int = Field(1, ge=1, le=1)
    seed: int = 300
    repeats: int = Field(1, ge=1)
    timeout_s: float = Field(1800.0, gt=0)
    data: Literal["bundled", "data_dir"] = "bundled"


class AgentDomain(Strict):
    """Which tasks of a τ² domain: ``task_ids`` (in order), else the first ``num_tasks`` of the
    ``split`` (all when both are unset)."""

    task_ids: list[str] | None = Field(None, min_length=1)
    num_tasks: int | None = Field(None, ge=1)
    split: str = "base"

    @field_validator("task_ids")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        dupes = sorted({t for t in value or [] if value.count(t) > 1})
        if dupes:
            raise ValueError(f"duplicate task id(s) {dupes} (each would run the same simulation again; use trials)")
        return value


class AgentLLM(Strict):
    """The user simulator or the judge: a local model the harness serves on the same loopback
    server (``model`` + ``adapter``, labelled ``local:<model>/<adapter>``), or any endpoint
    LiteLLM reaches (``llm``: a LiteLLM model string such as ``openai/gpt-4.1``, with
    ``api_base`` for an OpenAI-compatible server and ``api_key_env`` naming the variable that
    holds its key)."""

    model: str = "embedded"
    adapter: str = "baseline"
    params: dict[str, Any] = Field(default_factory=dict)
    llm: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AgentLLM:
        if self.llm is None:
            given = [k for k in ("api_base", "api_key_env") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} given without llm (the local model would be used); "
                                 "set llm to the endpoint's LiteLLM model string, e.g. openai/<served name>")
            return self
        given = [k for k in ("model", "adapter", "params") if k in self.model_fields_set]
        if given:
            raise ValueError(f"llm {self.llm!r} given together with {', '.join(given)}: use llm (an endpoint) "
                             "or model/adapter (a local model), not both")
        if self.llm.startswith("openai/") and not self.api_base:
            raise ValueError(f"llm {self.llm!r} needs api_base: without it LiteLLM sends openai/ models to "
                             "OPENAI_API_BASE, which the harness pins to its loopback server")
        return self

    @property
    def local(self) -> bool:
        return self.llm is None

    @property
    def remote(self) -> bool:
        """An endpoint off this machine (a provider, or an ``api_base`` that is not loopback)."""
        if self.llm is None:
            return False
        from urllib.parse import urlparse

        host = urlparse(self.api_base).hostname if self.api_base else None
        return host not in {"127.0.0.1", "localhost", "::1"}

    @property
    def label(self) -> str:
        return f"local:{self.model}/{self.adapter}" if self.local else f"{self.llm}@{self.api_base or 'provider'}"


class Agents(Strict):
    """The ``agents:`` section: τ²-bench cells (model × variant × domain × repeat)."""

    models: list[str] = Field(min_length=1)
    domains: dict[str, AgentDomain] = Field(min_length=1)
    variants: list[Variant] = Field(min_length=1)
    defaults: AgentDefaults = AgentDefaults()
    user: AgentLLM = AgentLLM()
    judge: AgentLLM | None = None

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: dict[str, AgentDomain]) -> dict[str, AgentDomain]:
        for name in value:
            if name not in TAU2_DOMAINS:
                raise ValueError(f"unknown τ² domain {name!r}; choose one of {list(TAU2_DOMAINS)}")
        return value
