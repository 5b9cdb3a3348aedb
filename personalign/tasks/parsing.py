"""Turn raw LLM text into a task's canonical answer (a label, a rating, or a clean text)."""

from __future__ import annotations

import re

from personalign.tasks.spec import TaskSpec

_QUOTES = "\"'`“”‘’«»"
_PREFIX = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|tag|label|category|score|rating|title|subject|headline|tweet|"
    r"paraphrase|paraphrased tweet|output|response)\s*(?:is)?\s*[:=-]\s*",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(r"^\s*(?:sure|here|okay|ok|certainly)\b.*:\s*$", re.IGNORECASE)
_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
_SCALE_PHRASES = re.compile(r"(?:scale\s+of\s+)?\b1\s*(?:to|-|–)\s*5\b|out of 5|/\s*5\b", re.IGNORECASE)
_RATING_CUES = (
    re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:stars?|/\s*5|out of 5)", re.IGNORECASE),
    re.compile(r"(?:score|rating|rate|give it|answer)\s*(?:is|of|:|=)?\s*(\d+(?:\.\d+)?)", re.IGNORECASE),
)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def strip_wrapping(text: str) -> str:
    """Strip whitespace, a trailing full stop and wrapping quotes/brackets/asterisks."""
    text = text.strip().strip("*").strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.rstrip(".").strip().strip(_QUOTES).strip()


def parse_label(raw: str, labels: tuple[str, ...]) -> str:
    """The label mentioned first in ``raw`` (longest label wins at the same position), else the raw text."""
    text = _PREFIX.sub("", strip_wrapping(raw)).lower()
    text = strip_wrapping(text)
    by_lower = {label.lower(): label for label in labels}
    if text in by_lower:
        return by_lower[text]
    if all(re.fullmatch(r"\[\d+\]", label) for label in labels):
        match = re.search(r"\[?(\d+)\]?", text)
        return f"[{match.group(1)}]" if match and f"[{match.group(1)}]" in labels else raw.strip()
    best: tuple[int, int, str] | None = None
    for lower, label in by_lower.items():
        match = re.search(rf"(?<![\w-]){re.escape(lower)}(?![\w-])", text)
        if match and (best is None or (match.start(), -len(lower)) < (best[0], best[1])):
            best = (match.start(), -len(lower), label)
    return best[2] if best else raw.strip()


def parse_rating(raw: str, low: float = 1.0, high: float = 5.0) -> str:
    """A rating as a number string ("4", "3.5").

    A bare number is kept as it is (the official metric takes ``float(output)``, even out of range).
    From free text only a number inside the scale is taken, so "The review has 120 words" stays
    unparseable (scored as the farthest end of the scale) instead of becoming a rating of 120.
    """
    text = raw.strip()
    bare = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*\.?\s*", text)
    if bare:
        return _canonical_number(bare.group(1))
    for word, digit in _NUMBER_WORDS.items():
        text = re.sub(rf"\b{word}\b", digit, text, flags=re.IGNORECASE)
    in_scale = [m.group(1) for cue in _RATING_CUES for m in cue.finditer(text)]
    in_scale += _NUMBER.findall(_SCALE_PHRASES.sub(" ", text))
    for token in in_scale:
        if low <= float(token) <= high:
            return _canonical_number(token)
    return raw.strip()


def rating_values(outputs: list[str]) -> list[float]:
    """The ratings among ``outputs`` (a user's past scores), skipping any that do not parse as a number."""
    values = []
    for output in outputs:
        try:
            values.append(float(parse_rating(output)))
        except ValueError:
            continue
    return values


def _canonical_number(token: str) -> str:
    value = float(token)
    return str(int(value)) if value.is_integer() else str(value)


def parse_text(raw: str) -> str:
    """The first real line of a generation, without preambles, 'Title:' prefixes or wrapping quotes."""
    for line in raw.strip().splitlines():
        if not line.strip() or _PREAMBLE.match(line):
            continue
        cleaned = strip_wrapping(_PREFIX.sub("", strip_wrapping(line)))
        if cleaned:
            return cleaned
    return raw.strip()


def final_answer_segment(raw: str) -> str:
    """For chain-of-thought outputs: the text after the last 'Answer:' marker, else the last line."""
    matches = list(re.finditer(r"(?:final\s+)?answer\s*[:：]", raw, flags=re.IGNORECASE))
    if matches:
        return raw[matches[-1].end():].strip()
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    return lines[-1] if lines else raw


def parse_output(task: TaskSpec, raw: str) -> str:
    """Parse raw model text into the task's canonical answer."""
    if task.kind == "classification":
        return parse_label(raw, task.labels)
    if task.kind == "rating":
        return parse_rating(raw, *task.rating_range)
    return parse_text(raw)
