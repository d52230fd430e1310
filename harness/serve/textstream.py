"""Generated token ids → the text deltas a streaming reply may show at once.

:class:`TextStream` is fed each token id as the decode loop produces it (from a policy's
``after_token`` hook, in the decode thread) and calls ``emit(delta)`` with the new text that is
*safe*: text that the final reply's content will hold at that place. Held back:

* an incomplete character (the detokenizer's ``U+FFFD`` at the end, a byte-level BPE token
  that ends inside a multi-byte UTF-8 character);
* the longest end of the text that is the beginning of a stop string (it may yet become one);
  a stop string itself, and everything after it, is never shown (the stream closes);
* with tools offered, everything from the first character a tool call can start with
  (``{``, ``[``, `````, ``<``: :func:`harness.serve.toolcall.parse_tool_calls` finds calls only
  in ``<tool_call>`` blocks, fenced blocks and bare JSON): whether that text is content or a call
  is only known when the reply is complete, so the app sends it then.

Detokenization is incremental (the prefix-offset scheme of text-generation-inference and vLLM:
decode a short window of recent ids and keep what the newest ids added), so each token costs a
window's decode, not the whole sequence's.
"""

from __future__ import annotations

from typing import Callable, Sequence

CALL_OPENERS = "{[`<"


class TextStream:
    """Token ids in, safe text deltas out (see the module docstring).

    Args:
        tokenizer: the model's tokenizer (``decode(ids, skip_special_tokens=True)``).
        emit: called with each non-empty delta, in order (may raise to stop the decode).
        stops: stop strings (their text is never emitted).
        hold_from: characters from whose first occurrence on nothing more is emitted.

    Attributes:
        text: the text decoded so far (held-back parts included).
        sent: how many characters of ``text`` were emitted.
    """

    def __init__(self, tokenizer, emit: Callable[[str], None], stops: Sequence[str] = (), hold_from: str = ""):
        self.tokenizer, self.emit = tokenizer, emit
        self.stops = [s for s in stops if s]
        self.hold_from = hold_from
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.closed = False
        self._prefix = self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def safe_end(self) -> int:
        """How much of :attr:`text` may be shown; sets :attr:`closed` at a stop string or a hold character."""
        text, end = self.text, len(self.text)
        for stop in self.stops:
            at = text.find(stop)
            if 0 <= at < end:
                end, self.closed = at, True
        for ch in self.hold_from:
            at = text.find(ch)
            if 0 <= at < end:
                end, self.closed = at, True
        if not self.closed:
            for stop in self.stops:  # the longest tail that could still become this stop string
                for k in range(min(len(stop) - 1, end), 0, -1):
                    if text.endswith(stop[:k]):
                        end = min(end, len(text) - k)
                        break
        return end

    def push(self, token_id: int) -> None:
        """Add one generated id; emit what became safe."""
        if self.closed:
            return
        self.ids.append(int(token_id))
        before = self._decode(self.ids[self._prefix:self._read])
        window = self._decode(self.ids[self._prefix:])
        if len(window) > len(before) and not window.endswith("\ufffd"):
            self.text += window[len(before):]
            self._prefix, self._read = self._read, len(self.ids)
        end = self.safe_end()
        if end > self.sent:
            delta, self.sent = self.text[self.sent:end], end
            self.emit(delta)
