"""The answer text of a completion's final stage, computed the same way streamed or not.

A client gets the same content with ``stream: true`` as without it. Each extractor is a pure function of the
final stage's whole raw text (``text``) and says, for a raw prefix, which prefix of that text is already
certain (``certain``): the service streams exactly that, as it grows, and the rest when the stage ends.

- ``plain`` methods (RAG, PAG, zero-shot, ICL, RPM, POPI) and the pass-through: the completion as generated,
  cut at the first ``stop`` string. A tail that could still become a stop string is held back.
- ``rpo``: the reflection's ``<personalized>`` segment, stripped, after ``<think>…</think>`` (tags in any
  case). The thinking is never streamed. A segment cut by the reflection's token budget (no closing tag)
  is the answer as far as it got (``finish_reason: length``). No segment, or an empty one: the base answer
  (``fallback: malformed output``), sent when the reflection ends.
- any other output filter (chain of thought): the method's own parse of the whole output, sent at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from personalign.backends import cut_at_stop

_OPEN = re.compile(r"<think>.*?</think>\s*<personalized>", re.DOTALL | re.IGNORECASE)
_CLOSE = "</personalized>"


def unsettled_tail(text: str, markers: tuple[str, ...]) -> int:
    """The length of the longest tail of ``text`` that could be the start of one of ``markers``."""
    return max((n for marker in markers for n in range(1, len(marker)) if text.endswith(marker[:n])), default=0)


def held_stop(text: str, stop: tuple[str, ...]) -> str:
    """``text`` cut at a stop string, less any tail that could be the start of one (not certain yet)."""
    cut = cut_at_stop(text, stop)
    if cut != text:
        return cut
    return text[:len(text) - unsettled_tail(text, stop)]


class FinalText:
    """The answer text of a final stage's raw output (``text``), and its certain prefix while it streams."""

    def __init__(self, output_filter: str, stop: tuple[str, ...] = (), parse: Callable[[str], str] | None = None):
        self.filter, self.stop, self.parse = output_filter, tuple(s for s in stop if s), parse
        self.raw, self.sent = "", ""  # the stage's raw output so far, and the answer text already streamed

    def feed(self, piece: str) -> str:
        """Add a raw piece of the stage's output; the answer text that became certain with it ("" if none)."""
        self.raw += piece
        certain = self.certain(self.raw)
        if len(certain) <= len(self.sent):
            return ""
        new, self.sent = certain[len(self.sent):], certain
        return new

    def rest(self, text: str) -> str:
        """What of the whole answer ``text`` was not streamed yet."""
        return text[len(self.sent):] if len(text) > len(self.sent) else ""

    def text(self, raw: str) -> str | None:
        """The answer for the whole raw output; None: malformed (the caller answers with the base answer)."""
        if self.filter == "plain":
            return cut_at_stop(raw, self.stop)
        if self.filter == "rpo":
            segment = self._segment(raw)
            if segment is None:
                return None
            end = segment.lower().find(_CLOSE)
            segment = (segment[:end] if end >= 0 else segment).strip()
            return cut_at_stop(segment, self.stop).rstrip() or None
        return cut_at_stop(self.parse(raw) if self.parse else raw, self.stop)

    def certain(self, raw: str) -> str:
        """The prefix of ``text(raw + anything)`` already decided by ``raw``."""
        if self.filter == "plain":
            return held_stop(raw, self.stop)
        if self.filter != "rpo":
            return ""
        segment = self._segment(raw)
        if segment is None:
            return ""
        end = segment.lower().find(_CLOSE)
        if end >= 0:
            return self.text(raw) or ""
        segment = segment.lstrip()
        segment = segment[:len(segment) - unsettled_tail(segment.lower(), (_CLOSE,))].rstrip()  # trailing space may end up stripped
        return held_stop(segment, self.stop).rstrip()

    @staticmethod
    def _segment(raw: str) -> str | None:
        opened = _OPEN.search(raw)
        return raw[opened.end():] if opened else None
