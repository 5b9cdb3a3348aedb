"""Turn raw LLM text into a task's canonical answer (a label, a rating, or a clean text), as a reader would.

A reader takes the answer the model states, not the first token that looks like one
(``personalign.tasks.reading``): list markers, negated answers, quoted echoes of the input and
mentions of the rating scale are not answers; a rating the model asserts ("I think 4") wins over one
it reports ("the reviewer gave 1 star"); options listed with no choice ("1. 1\\n2. 2", "1 2 3 4 5",
"comedy, action, drama") are unparsable; a lead-in ("Here is the title:", "The title for the
abstract of the paper is:") is not content.

Unparsable text is returned as it is (stripped). The metrics then score it as LaMP's script does (a
label outside the set is wrong; a rating that is not a number is the far end of the scale), and
``is_answer`` tells it apart, for the ``unparsable_rate`` of the results tables.
"""

from __future__ import annotations

import math
import re

from personalign.tasks.reading import (
    LOOKBACK,
    Candidate,
    drop_option_lists,
    inside,
    mask_echoes,
    non_overlapping,
    only_separators,
    read_candidates,
)
from personalign.tasks.spec import TaskSpec

_QUOTES = "\"'`“”‘’«»"
_PREFIX = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|tag|label|category|score|rating|title|subject|headline|tweet|"
    r"paraphrase|paraphrased tweet|output|response)\s*(?:is)?\s*[:=-]\s*",
    re.IGNORECASE,
)
_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
_NUMBER = re.compile(r"(?<![\w.])(?<!\w-)\d+(?:\.\d+)?(?![\w]|\.\d)")
_BARE_NUMBER = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)\s*\.?\s*")
# a mention of the scale, not a rating: "scale of 1 to 5", "1-5", the 5 of "out of 5" and of "4/5"
_SCALE = re.compile(r"\b\d+\s*(?:to|-|–)\s*\d+\b|(?<=out of)\s*\d+|(?<=/)\s*\d+", re.IGNORECASE)
# the model asserting a rating: "Score: 3", "the score of this review is 4", "I think 4", "I'd give it a 4", "it is 5"
_ASSERTED_BEFORE = re.compile(
    r"(?:\b(?:score|rating|answer|grade)\b(?:[^.!?\n\d]{0,40}?\b(?:is|of|would be|should be))?\s*[:=-]?"
    r"|\bi(?:'d|'ll|\s+would|\s+will)?\s+(?:think|say|rate|give|score|guess|go with|choose|pick|predict)"
    r"(?:\s+(?:it|this|this review|the review))?(?:\s+(?:a|an|as|at))?"
    r"|\b(?:deserves?|merits?|earns?)(?:\s+(?:a|an))?"
    r"|\b(?:it|this|that)\s*(?:is|'s|would be|should be)(?:\s+(?:a|an))?|\bwould be)\s*[\"'“(]?\s*$",
    re.IGNORECASE,
)
_CONTRAST = re.compile(r"\b(?:but|however|actually|rather|instead|on second thought)\b", re.IGNORECASE)
_ASSERTED_AFTER = re.compile(r"\s*[\"”']?\s*(?:is|would be)\s+(?:the|my|a|an|our)\s+(?:score|rating|answer)",
                             re.IGNORECASE)
_OUTPUT_NOUNS = (r"title|subject|headline|tweet|paraphrase|answer|output|response|summary|version|line|"
                 r"suggestion|option|result")
_COURTESY = re.compile(r"^\W*(?:sure|here|okay|ok|certainly|of course|absolutely)\b", re.IGNORECASE)
# "Title:", "Here is a possible title:", "The title for the abstract of the paper is:", "Sure! Here you go:"
_LEAD_IN = re.compile(r"^(?P<lead>[^:\n]{0,160}?)\s*\**\s*:\s*\**\s*", re.IGNORECASE)
_LEAD_IN_END = re.compile(rf"(?:\b(?:{_OUTPUT_NOUNS})s?|\b(?:is|are|be|was))\W*$", re.IGNORECASE)
_LEAD_IN_WORDS = 25  # a lead-in is short; a longer text ending in a colon is content
# a lead-in speaks about the answer ("Here is the title", "The headline is") or is only its name ("Title")
_ABOUT_ANSWER = re.compile(r"\b(?:a|an|the|my|your|here|this)\b|\b(?:is|are)\W*$", re.IGNORECASE)
_ANSWER_NAME = re.compile(rf"(?:(?:final|new|possible|suggested|paraphrased)\s+)?(?:{_OUTPUT_NOUNS})s?(?:\s+line)?",
                          re.IGNORECASE)
# a courtesy word opening the line, then "!", ".", "," or ":": "Sure! ", "Certainly. ", "Here you go: "
_COURTESY_OPENER = re.compile(r"^\s*(?:(?:sure|certainly|okay|ok|of course|absolutely|here you go|here you are|"
                              r"no problem|great)\s*[!.,:]+\s*)+", re.IGNORECASE)
_LEAD_IN_BEFORE_QUOTE = re.compile(r"^(?P<lead>[^\n]{0,400}?\b(?:is|would be))\s+(?=[\"“])", re.IGNORECASE)
_QUOTED_ANSWER = re.compile(r"\s*[\"“]([^\"“”\n]*\w[^\"“”\n]*)[\"”]")
_NAMES_OUTPUT = re.compile(rf"\b(?:{_OUTPUT_NOUNS})s?\b", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+(?=\S)")


def strip_wrapping(text: str) -> str:
    """Strip whitespace, a trailing full stop and wrapping quotes/brackets/asterisks."""
    text = text.strip().strip("*").strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.rstrip(".").strip().strip(_QUOTES).strip()


def _label_pattern(label: str) -> str:
    citation = re.fullmatch(r"\[(\d+)\]", label)
    if citation:  # LaMP_1's "[1]" may be written bare: "1"
        return rf"\[\s*{citation.group(1)}\s*\]|(?<![\w.\[]){citation.group(1)}(?![\w\]]|\.\d)"
    return rf"(?<![\w-]){re.escape(label.lower())}(?![\w-])"


def parse_label(raw: str, labels: tuple[str, ...], source: str | None = None) -> str:
    """The label the text states, else the raw text (unparsable).

    Mentions inside a quotation echoed from ``source`` (the prompt; any quotation that is not a label
    when it is None), after a list marker or under a negation do not count, and
    labels listed together with no choice ("comedy, action, drama") are options, not an answer.
    Of the labels left, the first stated wins.
    """
    by_lower = {label.lower(): label for label in labels}
    whole = strip_wrapping(_PREFIX.sub("", strip_wrapping(raw))).lower()
    if whole in by_lower:
        return by_lower[whole]
    text = mask_echoes(raw.replace("*", " "), lambda quoted: quoted.lower() in by_lower, source).lower()
    found = non_overlapping([Candidate(m.start(), m.end(), label) for lower, label in by_lower.items()
                             for m in re.finditer(_label_pattern(lower), text)])
    kept = drop_option_lists(text, read_candidates(text, found))
    return kept[0].value if kept else raw.strip()


def _canonical_number(token: str) -> str:
    value = float(token)
    return str(int(value)) if value.is_integer() else str(value)


def _rating_candidates(text: str, low: float, high: float) -> list[Candidate]:
    scale = [(m.start(), m.end()) for m in _SCALE.finditer(text)]
    return [Candidate(m.start(), m.end(), _canonical_number(m.group(0))) for m in _NUMBER.finditer(text)
            if low <= float(m.group(0)) <= high and not inside(m.start(), scale)]


def _is_asserted(text: str, candidate: Candidate) -> bool:
    before = text[max(0, candidate.start - LOOKBACK):candidate.start]
    return bool(_ASSERTED_BEFORE.search(before) or _ASSERTED_AFTER.match(text, candidate.end))


def parse_rating(raw: str, low: float = 1.0, high: float = 5.0, source: str | None = None) -> str:
    """A rating as a number string ("4", "3.5"), else the raw text (unparsable).

    A bare number is kept as it is (the official metric takes ``float(output)``, even out of range).
    From free text only a number inside the scale is taken ("The review has 120 words" is
    unparsable), and not one that is a list marker, negated, quoted from the review or part of the
    scale ("1 to 5", "out of 5"). A rating the model asserts wins, the first one after its last
    correction ("the reviewer gave 1 star, but I think 4" -> 4); else the one rating mentioned, or the
    number the answer starts with. Several ratings listed with no choice ("1. 1\\n2. 2", "3 or 4") are
    unparsable.
    """
    bare = _BARE_NUMBER.fullmatch(raw)
    if bare:
        return _canonical_number(bare.group(1))
    text = raw.replace("*", " ")
    for word, digit in _NUMBER_WORDS.items():
        text = re.sub(rf"\b{word}\b", digit, text, flags=re.IGNORECASE)
    text = mask_echoes(text, lambda quoted: _BARE_NUMBER.fullmatch(quoted) is not None, source)
    kept = read_candidates(text, _rating_candidates(text, low, high))
    # options joined by "or" are no choice, asserted or not ("I'd say 3 or 4")
    asserted = [c for c in drop_option_lists(text, kept) if _is_asserted(text, c)]
    if asserted:  # the first rating asserted after the last correction ("..., but I think 4")
        clause = [len(_CONTRAST.findall(text, 0, c.start)) for c in asserted]
        return asserted[clause.index(max(clause))].value
    if len({c.value for c in kept}) == 1:
        return kept[0].value
    if kept and only_separators(text[:kept[0].start]) and len(drop_option_lists(text, kept)) == len(kept):
        return kept[0].value  # the answer comes first, the explanation after it
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


def _title_cased(phrase: str) -> bool:
    """True when every word of four letters or more is capitalised ("Generating Headlines", "Who Is")."""
    words = re.findall(r"[^\W\d_][\w'-]*", phrase)
    long_words = [word for word in words if len(word) >= 4 or word.lower() in {"is", "are"}]
    return len(words) >= 2 and bool(long_words) and all(word[0].isupper() for word in long_words)


def _reads_as_lead_in(lead: str) -> bool:
    """True when an opening before a colon speaks of the answer rather than being part of it.

    Only the answer's name ("Title", "Headline", "Paraphrased tweet"), or a phrase about it that is not
    written as a title ("Here is a possible title", "The headline is"); a title with a colon
    ("Generating Headlines: A Neural Approach", "Who Is: A Lookup Service") is content.
    """
    if _ANSWER_NAME.fullmatch(lead):
        return True
    if _title_cased(lead):
        return False
    return bool(_ABOUT_ANSWER.search(lead) and (_LEAD_IN_END.search(lead) or _COURTESY.match(lead)))


def _lead_in_length(line: str, opening: bool) -> int:
    """How many leading characters of ``line`` are a lead-in (0 when none).

    A short opening ending in a colon that names what follows, ends in "is", or opens politely
    ("Here is a possible title:"); or, at the ``opening`` of a line, a sentence naming the output
    that ends in "is" before a quotation (``The title for the paper "…" is "…"``).
    """
    match = _LEAD_IN.match(line)
    if match:
        lead = match.group("lead").strip(" *")
        if lead and len(lead.split()) <= _LEAD_IN_WORDS and _reads_as_lead_in(lead):
            return match.end()
    match = _LEAD_IN_BEFORE_QUOTE.match(line) if opening else None
    return match.end() if match and _NAMES_OUTPUT.search(match.group("lead")) else 0


def parse_text(raw: str) -> str:
    """The first real line of a generation, without lead-ins, list markers or wrapping quotes.

    A lead-in is a short opening that ends in a colon and names what follows or opens politely
    ("Title:", "Here is a possible title:", "The title for the abstract of the paper is:", "Sure!
    Here you go:"), or a polite opening line followed by more lines. Only lead-ins: "" (unparsable).
    """
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    for index, line in enumerate(lines):
        line = _COURTESY_OPENER.sub("", line) if index == 0 else line
        opening = True
        while (cut := _lead_in_length(line, opening)) > 0:
            line, opening = line[cut:], False
        quoted = None if opening else _QUOTED_ANSWER.match(line)
        if quoted:  # 'The subject is "Lunch" and ...': the answer ends at its closing quote
            return quoted.group(1).strip()
        introduces = line.rstrip(" *").endswith(":") and len(line.split()) <= _LEAD_IN_WORDS
        polite_opening = index == 0 and _COURTESY.match(line) and line.rstrip(" *")[-1:] in ".!:"
        if index < len(lines) - 1 and (introduces or polite_opening):
            continue  # a lead-in line: the content follows
        cleaned = strip_wrapping(_LIST_ITEM.sub("", strip_wrapping(line)))
        if re.search(r"\w", cleaned):  # not a bare bullet or punctuation
            return cleaned
    return ""


def final_answer_segment(raw: str) -> str:
    """For chain-of-thought outputs: the text after the last 'Answer:' marker, else the last line."""
    matches = list(re.finditer(r"(?:final\s+)?answer\s*[:：]", raw, flags=re.IGNORECASE))
    if matches:
        return raw[matches[-1].end():].strip()
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    return lines[-1] if lines else raw


def parse_output(task: TaskSpec, raw: str, source: str | None = None) -> str:
    """Parse raw model text into the task's canonical answer (the stripped raw text when unparsable).

    ``source``, the prompt the model saw, tells an echoed quotation from the model's own words.
    """
    if task.kind == "classification":
        return parse_label(raw, task.labels, source)
    if task.kind == "rating":
        return parse_rating(raw, *task.rating_range, source=source)
    return parse_text(raw)


def is_answer(task: TaskSpec, prediction: str) -> bool:
    """True when a metric can read ``prediction``: a label of the task, a finite number, a non-empty text."""
    if task.kind == "classification":
        return prediction.strip() in task.labels
    if task.kind == "rating":
        try:
            return math.isfinite(float(prediction.strip()))
        except ValueError:
            return False
    return bool(prediction.strip())
