"""How a reader finds the answer in free text: what is echoed, listed, negated or only a lead-in.

The task parsers (``personalign.tasks.parsing``) find candidate answers (labels, ratings) and ask
these helpers which of them a reader would discard:

- a quoted passage copied from the prompt is echoed input (``"The true story of ..."``), unless the
  quoted text is itself an answer (``is "comedy"``);
- a list marker (``1. ``, ``2) `` after ``1) ``, ``- ``) is not an answer;
- a negated answer (``not comedy``, ``Not 1``) is not the answer, nor one taken back (``5? No, 4``);
- candidates written one after another with nothing but separators between them
  (``1 2 3 4 5``, ``comedy, action, drama``) are options, not a choice.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable

LOOKBACK = 80  # characters before a candidate that may govern it ("not", "I think"): a few words
ECHO_MARK = "¶"  # stands in for a masked passage: not a separator, so it never joins a list of options
_QUOTED = re.compile(r"[\"“«]([^\"“”«»]*)(?:[\"”»]|$)")
_NUMBERED = re.compile(r"^[ \t]*(\d{1,2})[.)][ \t]+(?=\S)", re.MULTILINE)
_NUMBER_ALONE = re.compile(r"^[ \t]*(\d{1,2})[.)]?[ \t]*$", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*[-*•][ \t]+(?=\S)", re.MULTILINE)
# a negator, then at most a verb of choosing ("wouldn't call it") and one filler word ("not a comedy");
# "no doubt", "no problem(s)" and "not only" do not negate what follows
_NEGATION = re.compile(r"(?:\b(?:not(?!\s+only\b)|never|no(?!\s+(?:doubt|problems?)\b)|neither|nor|rather than|"
                       r"instead of|other than)|n't)\s+"
                       r"(?:(?:be|say|call|give|rate|choose|pick)\s+(?:it\s+|this\s+)?)?(?:(?:a|an|the)\s+)?"
                       r"[\"'“‘]?$",
                       re.IGNORECASE)
# "5 stars? No, 4.": a sentence opening with "No," takes back what came before it
_CORRECTION = re.compile(r"(?:^|[.?!:;]\s*)no\s*[,!.]\s*", re.IGNORECASE)
_SEPARATORS = re.compile(r"(?:[\s,;/|&+()\[\]\"'“”‘’*•.:-]|\b(?:and|or|nor)\b|^[ \t]*\d{1,2}[.)](?=\s))*",
                         re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Candidate:
    """A possible answer found in the text: where it is and the answer it stands for."""

    start: int
    end: int
    value: str


def _trigrams(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def copied_from(passage: str, source_trigrams: set[tuple[str, ...]], source_text: str) -> bool:
    """True when most of ``passage`` is copied from the source (word trigrams; a short one: as a phrase)."""
    words = re.findall(r"\w+", passage.lower())
    if len(words) < 3:
        return bool(words) and re.search(r"\b" + r"\W+".join(words) + r"\b", source_text) is not None
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    return sum(g in source_trigrams for g in grams) >= len(grams) / 2


def mask_echoes(text: str, is_answer: Callable[[str], bool], source: str | None = None) -> str:
    """``text`` with every quoted passage that echoes the input replaced by one mark.

    A quoted passage that is itself an answer (``is "comedy"``) is kept. With ``source`` (the prompt
    the model saw), a passage is an echo when most of it is copied from there (the model may change a
    character or two); without, every other quoted passage counts as one. An unterminated quote runs
    to the end of the text (a completion cut off mid-echo).
    """
    source_text = None if source is None else source.lower()
    source_trigrams = set() if source_text is None else _trigrams(re.findall(r"\w+", source_text))

    def replace(match: re.Match) -> str:
        quoted = match.group(1).strip()
        if is_answer(quoted.rstrip(".…").strip()):
            return match.group(0)
        if source_text is not None and not copied_from(quoted, source_trigrams, source_text):
            return match.group(0)
        return f" {ECHO_MARK} "

    return _QUOTED.sub(replace, text)


def list_markers(text: str) -> list[tuple[int, int]]:
    """Spans of the list markers of ``text``: bullets (``- ``, ``* ``) and the items of a numbered list.

    ``N.`` or ``N)`` opening a line before more text is an item of a numbered list when a list starts
    there (N = 1) or item N - 1 came before it; a number alone is one when it follows item N - 1
    (item N cut off). Otherwise the number may be the answer ("Answer: 5. They are ...").
    """
    item_end: dict[int, int] = {}
    spans = [(m.start(), m.end()) for m in _BULLET.finditer(text)]
    for match in _NUMBERED.finditer(text):
        number = int(match.group(1))
        if number == 1 or item_end.get(number - 1, len(text) + 1) <= match.start():
            item_end.setdefault(number, match.end())
            spans.append((match.start(), match.end()))
    spans += [(m.start(), m.end()) for m in _NUMBER_ALONE.finditer(text)
              if item_end.get(int(m.group(1)) - 1, len(text) + 1) <= m.start()]
    return sorted(spans)


def inside(position: int, spans: list[tuple[int, int]]) -> bool:
    """True when ``position`` falls in one of ``spans`` (sorted, not overlapping)."""
    index = bisect.bisect_right(spans, (position, float("inf"))) - 1
    return index >= 0 and spans[index][0] <= position < spans[index][1]


def is_negated(text: str, candidate: Candidate) -> bool:
    """True when a negation governs the candidate (``not comedy``, ``Not 1``, ``wouldn't give it a 5``)."""
    return bool(_NEGATION.search(text[max(0, candidate.start - LOOKBACK):candidate.start]))


def read_candidates(text: str, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates a reader keeps: not list markers, not negated, not taken back by a later "No,"."""
    markers = list_markers(text)
    kept = [c for c in candidates if not inside(c.start, markers) and not is_negated(text, c)]
    corrections = [m.end() for m in _CORRECTION.finditer(text)]
    after = [c for c in kept if corrections and c.start >= corrections[-1]]
    return after or kept


def only_separators(gap: str) -> bool:
    """True when ``gap`` holds nothing but separators (commas, 'or', newlines, list markers)."""
    return _SEPARATORS.fullmatch(gap) is not None


def drop_option_lists(text: str, candidates: list[Candidate]) -> list[Candidate]:
    """Remove runs of two or more different candidates joined only by separators (options, no choice)."""
    runs: list[list[Candidate]] = []
    for candidate in candidates:
        if runs and only_separators(text[runs[-1][-1].end:candidate.start]):
            runs[-1].append(candidate)
        else:
            runs.append([candidate])
    return [c for run in runs if len({c.value for c in run}) == 1 for c in run]


def non_overlapping(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates in order of appearance; at one place the longest wins, and one inside another is dropped."""
    kept: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: (c.start, -(c.end - c.start))):
        if not kept or candidate.start >= kept[-1].end:
            kept.append(candidate)
    return kept
