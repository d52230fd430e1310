"""A harness variant as a chat backend: :class:`VariantBackend`.

One request = one call of the shared decode loop (:func:`harness.generation.generate`,
batch of one) with the variant's model and a fresh decode policy, so the served answer is
the technique's own. The prompt is built by :mod:`harness.serve.chat_format` through the
variant's own prompt transform (:class:`harness.adapters.reasoning_format.PromptTransform`:
e.g. think_budget's effort-mode system prompt and NoThinking prefill), the code that builds its
evaluation prompts, and tool calls are read back by :mod:`harness.serve.toolcall`.

A variant whose adapter must be prepared on a task before it wraps
(:meth:`harness.adapters.base.Adapter.needs_preparation`, e.g. think_budget's calibrated Medium
and Low modes) is served only when a calibration task is given (:func:`suite_backends`);
otherwise :func:`check_servable` raises :class:`CalibrationNeeded` before anything loads.

Tool calling (fallback format, see :mod:`~harness.serve.chat_format`):

* ``tool_choice`` ``auto`` (or unset) with tools: the model answers freely; calls to an
  offered tool found in its text become ``tool_calls`` (``finish_reason="tool_calls"``), else
  the text is the content (``parse_tool_calls(strict=True)``: JSON naming anything else, such
  as ``{"name": "John Smith"}``, is content). Generation stops at the first ``</tool_call>`` (one call per reply).
* ``required`` / a function object: the reply is *prefilled* in two steps. First
  ``<tool_call>\\n{"name": "`` and the model writes the name up to its closing quote (skipped
  for a forced function); the name is matched to the closest tool. Then the prompt is
  prefilled up to ``{"name": "<tool>", "arguments": {"<first required parameter>": `` and the
  model writes the arguments; when that parameter's schema is a string (see
  :func:`is_string_schema`) the opening quote is prefilled too, so the model writes the string's
  text, not a number. If the result still does not parse,
  :func:`~harness.serve.toolcall.forced_call` builds the call from what is there (repaired or
  empty arguments). A tool call is always returned, and for a named function it is that one.
* An empty answer is never returned: end-of-sequence is suppressed until the output holds a
  non-blank character; if the token cap is reached with blank text and tools are offered,
  the request is retried once as ``required``.

Usage counts every decode the request took: ``prompt_tokens`` sums the prompts read
(prefills included), ``completion_tokens`` the tokens generated, which is at most the request's
``max_tokens`` over all its decodes (each decode gets what the earlier ones left; with nothing
left a required call is built from what is there); ``ttft_s`` is the time of the request's
first generated token, from the start of its first decode's prefill (the decode loop's own
``ttft_s`` when that decode wrote it, as it always does unless cut to nothing): a forced call's
name decode, not the arguments decode after it (DESIGN.md §4; templating and tokenization
excluded).

Request options: ``stop`` strings end the free-text decode (the content is cut before them;
not the prefilled call decodes of ``required``, whose text is a call, not content);
``temperature``/``top_p``/``seed`` drive every decode's sampling
(:class:`harness.generation.GenerationSettings`).

Streaming (``complete(request, emit=...)``, see :mod:`harness.serve.protocol`): the free-text
decode feeds a :class:`~harness.serve.textstream.TextStream` from the decode policy's
``after_token`` hook, right after each token is timed; with tools offered, text from the first
character a call can start with is held until the reply is parsed. A ``required`` call emits
nothing while decoding (its reply is the call).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Callable

import torch

from harness.generation import DecodePolicy, GenerationSettings, RowState, eos_ids, generate
from harness.serve import chat_format, toolcall
from harness.serve.protocol import ChatReply, ChatRequest
from harness.serve.textstream import CALL_OPENERS, TextStream
from harness.telemetry.clock import monotonic_s

CALL_PREFILL = '<tool_call>\n{"name": "'
EMPTY_REPLY = "(no answer)"
_NO_DECODE = SimpleNamespace(text="", output_tokens=0, ttft_s=None, finish_reason="length")


def is_string_schema(schema: Any) -> bool:
    """Whether a JSON schema admits only strings (``null`` aside): ``type: string`` (or
    ``[string, null]``), or an ``anyOf``/``oneOf`` of such options. ``$ref`` is not followed."""
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind is not None:
        kinds = set(kind) if isinstance(kind, list) else {kind}
        return kinds - {"null"} == {"string"}
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options:
        real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        return bool(real) and all(is_string_schema(o) for o in real)
    return False


class NonBlankPolicy(DecodePolicy):
    """Delegates every hook to the technique's policy, but masks the EOS logits of a row until
    its text holds a non-blank character (so a reply is never empty). ``on_token(token_id)``,
    when given, is called with each token the row keeps, first thing in ``after_token`` (the
    token is already timed: streaming it adds nothing to the TTFT the loop records)."""

    def __init__(self, inner: DecodePolicy, eos: list[int], on_token: Callable[[int], None] | None = None):
        self.inner, self.eos, self.on_token = inner, list(eos), on_token
        self._blank: dict[int, bool] = {}

    @property
    def sampling(self):  # generate() sets it on the outer policy: the inner one picks tokens
        return self.inner.sampling

    @sampling.setter
    def sampling(self, value) -> None:
        self.inner.sampling = value

    @property
    def greedy_only(self) -> bool:
        return self.inner.greedy_only

    @property
    def continuous(self) -> bool:
        return self.inner.continuous

    def begin(self, rows: list[RowState]) -> None:
        self.inner.begin(rows)

    def choose(self, rows: list[RowState], logits: torch.Tensor) -> list[int]:
        if self.eos and any(self._blank.get(r.index, True) for r in rows):
            logits = logits.clone()
            for position, r in enumerate(rows):  # batch position, not the prompt index
                if self._blank.get(r.index, True):
                    logits[position, self.eos] = float("-inf")
        return self.inner.choose(rows, logits)

    def forward(self, model, **inputs) -> Any:
        return self.inner.forward(model, **inputs)

    def after_token(self, row: RowState, token: int, text_so_far: Callable[[], str]) -> None:
        if self.on_token is not None:
            self.on_token(token)
        if self._blank.get(row.index, True):
            self._blank[row.index] = not text_so_far().strip()
        self.inner.after_token(row, token, text_so_far)

    def leave(self, row: RowState) -> None:
        self.inner.leave(row)

    def finish(self, row: RowState) -> None:
        self.inner.finish(row)


def context_length(model, tokenizer) -> int:
    """The model's context in tokens (``max_position_embeddings``, capped by a sane
    ``tokenizer.model_max_length``; 2048 when neither says)."""
    sizes = [getattr(model.config, "max_position_embeddings", None)]
    limit = getattr(tokenizer, "model_max_length", None)
    sizes.append(limit if isinstance(limit, int) and limit < 10**7 else None)
    sizes = [s for s in sizes if isinstance(s, int) and s > 0]
    return min(sizes) if sizes else 2048


class VariantBackend:
    """Serves one harness variant (model + decode policy) as a :class:`ChatBackend`.

    Not thread-safe: the app calls it under a lock (``thread_safe = False``). Streams
    (``streams = True``: :meth:`complete` takes ``emit``).

    Args:
        model, tokenizer: the variant's ``transformers`` model and tokenizer.
        policy_factory: a fresh technique policy per request (default: greedy).
        max_tokens: completion cap when the request sets none, in tokens.
        max_prompt_tokens: prompt budget in tokens (default: the model's context minus the
            request's completion cap); longer conversations lose their oldest turns.
        tool_format: ``auto`` (native when the template renders tools), ``native`` or ``fallback``.
        prompt_transform: the variant's :class:`~harness.adapters.reasoning_format.PromptTransform`
            (system prompt, prefill) applied to every prompt (default: none, the bare template).

    Attributes:
        preparation: the columns the adapter's ``prepare`` returned when the variant was
            prepared on a task (e.g. ``calibration_json``); ``{}`` otherwise.

    Raises (from :meth:`complete`): ``ValueError`` for a conversation that cannot be templated
    or does not fit even truncated (the app answers 400).
    """

    thread_safe = False
    streams = True

    def __init__(
        self,
        model,
        tokenizer,
        policy_factory: Callable[[], DecodePolicy] | None = None,
        *,
        max_tokens: int = 256,
        max_prompt_tokens: int | None = None,
        tool_format: str = "auto",
        prompt_transform=None,
    ):
        if tool_format not in ("auto", "native", "fallback"):
            raise ValueError(f"tool_format must be auto, native or fallback, got {tool_format!r}")
        self.model, self.tokenizer = model, tokenizer
        self.policy_factory = policy_factory or DecodePolicy
        self.prompt_transform = prompt_transform
        self.preparation: dict[str, Any] = {}
        self.max_tokens, self.max_prompt_tokens = max_tokens, max_prompt_tokens
        self.native = chat_format.template_supports_tools(tokenizer) if tool_format == "auto" else tool_format == "native"
        self.context = context_length(model, tokenizer)
        self.eos = eos_ids(model, tokenizer)

    @classmethod
    def from_variant(cls, variant, **kwargs) -> "VariantBackend":
        """Serve a :class:`harness.variant.GenerationVariant` as it is evaluated: its model,
        tokenizer, decode policy and prompt transform (``prompt_transform``, e.g. a
        :class:`harness.adapters.prompted_variant.PromptedVariant`'s system prompt and prefill);
        ``max_tokens`` defaults to the variant's ``max_new_tokens``.

        Raises:
            TypeError: the variant builds its prompts in its own ``apply_chat_template`` without
                exposing a ``prompt_transform``: serving it would measure a different prompt.
        """
        kwargs.setdefault("max_tokens", variant.max_new_tokens)
        transform = getattr(variant, "prompt_transform", None)
        if transform is None:
            from harness.variant import GenerationVariant

            own = getattr(type(variant), "apply_chat_template", GenerationVariant.apply_chat_template)
            if isinstance(variant, GenerationVariant) and own is not GenerationVariant.apply_chat_template:
                raise TypeError(
                    f"{type(variant).__name__} overrides apply_chat_template without a prompt_transform: "
                    "its served prompts would differ from its evaluated ones"
                )
        kwargs.setdefault("prompt_transform", transform)
        return cls(variant.model, variant.tokenizer, variant.policy_factory, **kwargs)

    @classmethod
    def from_adapter(cls, base, adapter: str, params: dict[str, Any] | None = None, **kwargs) -> "VariantBackend":
        """Serve ``adapter`` (a registry name) with ``params`` wrapped around ``base`` (a
        :class:`harness.models.BaseModel`), unprepared.

        Raises:
            UnknownNameError / pydantic errors: unknown adapter or params.
            CalibrationNeeded: the adapter must be prepared on a task first (use
                :func:`suite_backends` with a calibration task).
        """
        from harness.adapters import ADAPTERS

        technique = ADAPTERS.get(adapter)(params or {})
        reason = technique.needs_preparation()
        if reason:
            raise CalibrationNeeded(f"adapter {adapter!r} cannot be served unprepared: {reason}")
        variant = technique.wrap(base, batch_size=1, max_new_tokens=kwargs.get("max_tokens", 256))
        return cls.from_variant(variant, **kwargs)

    def _decode(self, prompt_ids: list[int], cap: int, request: ChatRequest, stops: list[str], on_token=None):
        settings = GenerationSettings(
            max_new_tokens=cap, stop_strings=stops, eos_token_ids=self.eos,
            temperature=request.temperature or 0.0, seed=request.seed,
            top_p=1.0 if request.top_p is None else request.top_p,
        )
        policy = NonBlankPolicy(self.policy_factory(), self.eos, on_token)
        return generate(self.model, self.tokenizer, [prompt_ids], settings, policy)[0]

    def complete(self, request: ChatRequest, emit: Callable[[str], None] | None = None) -> ChatReply:
        """Answer ``request`` with one (rarely two) decodes; see the module docstring.

        Args:
            emit: streaming sink for content deltas (called from this thread), or ``None``.
        """
        cap = request.max_tokens or self.max_tokens
        budget = self.context - cap
        if self.max_prompt_tokens is not None:
            budget = min(budget, self.max_prompt_tokens)
        if budget < 1:
            raise ValueError(f"max_tokens={cap} leaves no room for a prompt in the model's {self.context}-token context")
        tools = request.tools if request.tools and request.tool_choice != "none" else None
        names = [t["function"]["name"] for t in tools or []]
        forced = request.tool_choice["function"]["name"] if isinstance(request.tool_choice, dict) and tools else None
        required = bool(tools) and (request.tool_choice == "required" or forced is not None)
        usage = [0, 0]
        starts: list[float] = []  # each decode's start (monotonic s)
        first_token: list[float] = []  # the request's first token, from the first decode's start

        by_name = {t["function"]["name"]: t["function"] for t in tools or []}

        def decode(prefill: str, choice, stops: list[str], limit: int, stream: TextStream | None = None):
            """One decode, capped by what is left of the request's ``cap`` (all decodes of a
            request together generate at most ``cap`` tokens); none when nothing is left."""
            prompt = chat_format.render(
                self.tokenizer, request.messages, tools, choice, budget, prefill=prefill, native=self.native,
                transform=self.prompt_transform,
            )
            limit = min(limit, cap - usage[1])
            if limit < 1:
                return prompt, _NO_DECODE, prefill
            starts.append(monotonic_s())
            on_token = None if stream is None else stream.push
            result = self._decode(prompt.token_ids, limit, request, stops, on_token)
            usage[0] += len(prompt.token_ids)
            usage[1] += result.output_tokens
            if not first_token and result.ttft_s is not None:
                first_token.append(starts[-1] - starts[0] + result.ttft_s)
            return prompt, result, prefill + result.text

        def must_call():
            """Name (prefilled when forced, else written by the model up to its closing quote),
            then the arguments, prefilled up to the first required parameter's value (and its
            opening quote when that parameter is a string)."""
            choice = request.tool_choice if forced else "required"
            name = forced
            if name is None:
                _, _, text = decode(CALL_PREFILL, choice, ['"', "\n"], 24)
                name = toolcall.match_name(text[len(CALL_PREFILL):].split('"')[0].strip(), names, cutoff=0.0)
            schema = by_name.get(name, {}).get("parameters") or {}
            properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
            params = [*schema.get("required", []), *properties]
            prefill = CALL_PREFILL + f'{name}", "arguments": {{'
            if params:
                prefill += json.dumps(params[0]) + ": " + ('"' if is_string_schema(properties.get(params[0])) else "")
            return decode(prefill, choice, [chat_format.CALL_CLOSE], cap)

        if required:
            prompt, result, text = must_call()
        else:
            stops = ([chat_format.CALL_CLOSE] if tools and not self.native else []) + list(request.stop)
            stream = None if emit is None else TextStream(self.tokenizer, emit, stops, CALL_OPENERS if tools else "")
            prompt, result, text = decode("", request.tool_choice, stops, cap, stream)
        content, calls = toolcall.parse_tool_calls(text, names, strict=not required) if tools else ((text.strip() or None), [])
        if tools and not calls and content is None:  # blank output under the cap: insist on a call
            required = True
            prompt, result, text = must_call()
            content, calls = toolcall.parse_tool_calls(text, names)
        if required and not calls:
            content, calls = None, [toolcall.forced_call(text, names, forced)]
        if forced:
            calls = [{**c, "function": {**c["function"], "name": forced}} for c in calls[:1]]
        finish = "tool_calls" if calls else result.finish_reason
        if finish not in ("stop", "length", "tool_calls"):
            finish = "stop"
        if not calls and content is None:
            content = EMPTY_REPLY
        return ChatReply(
            content=content,
            tool_calls=calls,
            finish_reason=finish,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            ttft_s=first_token[0] if first_token else None,
            truncated_turns=prompt.truncated_turns,
        )


class CalibrationNeeded(ValueError):
    """A variant must be prepared (calibrated) on a task before it can serve, and none was given."""


def _servable(suite) -> dict[str, tuple[Any, list[str], int, int]]:
    """Variant name → (variant, its section's models, the section's default completion cap,
    the batch size its evaluation cells decode with): the top-level ``variants`` first, then the
    ``agents:`` section's (batch 1, as agent cells serve)."""
    agents = suite.section("agents")
    by_name: dict[str, tuple[Any, list[str], int, int]] = {}
    for v in suite.variants:
        batch = getattr(v, "batch_size", None) or suite.defaults.batch_size
        by_name[v.name] = (v, list(suite.models), suite.defaults.max_new_tokens, batch)
    for v in (agents.variants if agents is not None else []):
        by_name.setdefault(v.name, (v, list(agents.models), agents.defaults.max_tokens, 1))
    return by_name


def check_servable(suite, variant_names: list[str], calibration_task: str | None = None) -> None:
    """Check, before anything loads, that the named variants of ``suite`` can be served.

    Args:
        calibration_task: the task whose docs variants are prepared on (``None``: none).

    Raises:
        ValueError: an unknown variant name (the message lists the servable ones); an unknown
            calibration task, or one that is not a generation task.
        CalibrationNeeded: a variant must be prepared on a task
            (:meth:`harness.adapters.base.Adapter.needs_preparation`) and ``calibration_task``
            is ``None``; the one-line message names ``--calibration-task``.
    """
    from harness.adapters import ADAPTERS

    by_name = _servable(suite)
    unknown = [n for n in variant_names if n not in by_name]
    if unknown:
        raise ValueError(
            f"unknown variant(s) {unknown} in suite {suite.name!r} (servable variants: {sorted(by_name)})"
        )
    if calibration_task is not None:
        from harness.tasks import get_task

        try:
            spec = get_task(calibration_task)
        except KeyError as exc:
            raise ValueError(f"--calibration-task: {exc}") from None
        if spec.output_type != "generate_until":
            raise ValueError(f"--calibration-task {calibration_task!r} is not a generation task; calibrate on one (e.g. gsm8k)")
        return
    for name in variant_names:
        v = by_name[name][0]
        reason = ADAPTERS.get(v.adapter)(v.params).needs_preparation()
        if reason:
            raise CalibrationNeeded(
                f"variant {name!r} needs --calibration-task TASK to be served: {reason} "
                "(e.g. --calibration-task gsm8k)"
            )


def suite_backends(
    suite,
    variant_names: list[str],
    model_ref: str | None = None,
    device: str | None = None,
    max_tokens: int | None = None,
    max_prompt_tokens: int | None = None,
    calibration_task: str | None = None,
) -> dict[str, VariantBackend]:
    """Backends for the named variants of ``suite`` (a :class:`harness.config.suite.Suite`), keyed by
    variant name: the top-level ``variants`` and the ``agents:`` section's. One base model is
    loaded per (model, dtype) and shared (adapters never mutate it). Each backend serves its
    variant as evaluated: same decode policy, same prompt transform.

    Args:
        model_ref: the base model (default: the first model of the variant's section, the
            top-level ``models`` or ``agents.models``).
        device: ``auto``/``cpu``/``cuda[:N]`` (default: the suite's).
        max_tokens: default completion cap (default: the suite's ``defaults.max_new_tokens``;
            ``agents.defaults.max_tokens`` for an agents variant).
        max_prompt_tokens: prompt budget (default: the model's context minus the cap).
        calibration_task: when given, every variant's adapter is prepared on that task's docs
            before it wraps (:meth:`harness.adapters.base.Adapter.prepare`, as an evaluation
            cell does: think_budget calibrates on the task's last ``calibration_docs`` docs, none
            held out for evaluation here), with the completion cap as the token cap and the batch
            size the suite's cells use; variants of one call share one calibration per setting.
            The returned columns are kept in ``VariantBackend.preparation``.

    Raises:
        ValueError: an unknown variant name (the message lists the servable ones), no model, an
            unusable calibration task (see :func:`check_servable`) or a failed preparation (e.g.
            ``calibration_docs`` not below the task's size).
        CalibrationNeeded: a variant needs a calibration task and none was given.
        harness.tasks.DataError: the calibration task's data cannot be read (before any model loads).
        harness.models.ModelError: the model cannot be loaded.
    """
    from harness import models
    from harness.adapters import ADAPTERS
    from harness.adapters.base import CellContext

    check_servable(suite, variant_names, calibration_task)
    by_name = _servable(suite)
    spec = docs = None
    if calibration_task is not None:
        from harness.tasks import get_task

        spec = get_task(calibration_task)
        docs = spec.load_docs()
    bases: dict[tuple[str, str], Any] = {}
    out: dict[str, VariantBackend] = {}
    kept: dict[str, bytes] = {}  # files adapters keep (one High calibration shared by the modes)
    for name in variant_names:
        v, section_models, section_cap, batch = by_name[name]
        ref = model_ref or (section_models[0] if section_models else None)
        if ref is None:
            raise ValueError(f"suite {suite.name!r} names no model for variant {name!r}; pass --model-ref")
        if (ref, v.dtype) not in bases:
            bases[ref, v.dtype] = models.load(ref, dtype=v.dtype, device=device or suite.defaults.device)
        base = bases[ref, v.dtype]
        cap = max_tokens or section_cap
        adapter = ADAPTERS.get(v.adapter)(v.params)
        prepared: dict[str, Any] = {}
        if spec is not None:
            # limit=0: nothing of the task is evaluated here, so any slice may be held out
            prepared = adapter.prepare(base, spec, docs, CellContext(0, batch, cap, kept))
        variant = adapter.wrap(base, batch_size=1, max_new_tokens=cap)
        out[name] = VariantBackend.from_variant(variant, max_tokens=cap, max_prompt_tokens=max_prompt_tokens)
        out[name].preparation = prepared
    return out
