"""Incremental detokenization: a sequence's text grows by the new token's piece only.

Decoding the whole output after every token costs O(n) per step (O(n²) per sequence); the
decode loop instead keeps one :class:`IncrementalText` per row. The method is the one
streaming servers use (vLLM's ``detokenize_incrementally``, TGI's ``decode_token``; written
here from their description): decode a short window of ids twice, once without and once with
the new ids, and append the difference. Decoding a window that starts a few tokens back keeps
a tokenizer's context-dependent rules (a SentencePiece leading space, byte-level pieces that
complete a UTF-8 character only together) consistent; while the window's text ends in an
incomplete character (``U+FFFD``), nothing is appended until the next token completes it.

The text equals ``tokenizer.decode(ids, skip_special_tokens=True)`` of the same ids except,
at most, a character still incomplete at the end (a test checks equality on real outputs).
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


class IncrementalText:
    """A row's decoded text, extended one token at a time.

    Attributes:
        text: the text of the ids pushed so far (complete characters only).
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0  # start of the decode window
        self._read = 0  # ids before this are in ``text``

    def push(self, token: int) -> str:
        """Append ``token``; returns the text it added (``""`` while a character is incomplete)."""
        self.ids.append(token)
        decode = self.tokenizer.decode
        before = decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            added = after[len(before) :]
            self.text += added
            self._prefix, self._read = self._read, len(self.ids)
            return added
        return ""


def find_stop(text: str, added: str, stops) -> int:
    """Index in ``text`` of the earliest stop string that the last ``added`` characters
    completed, or ``-1``. Only the tail that could hold a new match is searched (the text before
    it was searched when it was added), so a step costs O(len(added) + longest stop)."""
    if not added:
        return -1
    longest = max((len(s) for s in stops if s), default=0)
    if not longest:
        return -1
    begin = max(0, len(text) - len(added) - longest + 1)
    tail = text[begin:]
    hits = [tail.find(s) for s in stops if s and s in tail]
    return begin + min(hits) if hits else -1
