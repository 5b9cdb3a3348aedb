"""A deterministic, LLM-free teacher used when the LLM teacher produces no consistent trajectory.

It writes a short, grounded rationale from the data itself (the user's example, the base answer
and the gold), so small local setups still get a usable SFT set. Runs record which teacher wrote
each trajectory, and the acceptance statistics report both.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from personalign.rpo.prompts import median_words, past_outputs
from personalign.tasks.parsing import parse_output, rating_values
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem

TEMPLATE_STYLES = ("initial", "prior")
TEXT_TARGETS = ("gold", "kept_input")
# The "prior" thinking's decisions, as written and as read back (prior_decision)
KEEPS = "This one fits their usual answer."
FOLLOWS = "Like the most similar example"
LEAVES = ("than their usual", "not their usual")


def _snippet(text: str, words: int = 8) -> str:
    parts = " ".join(str(text).split()).split(" ")
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def template_thinking(task: TaskSpec, base_answer: str, item: ProfileItem | None, gold: str,
                      query: str = "") -> str:
    """A 1-3 sentence rationale linking the user's example to the change from base answer to gold.

    For text tasks it names the words of ``query`` that the user's answer keeps, and the answer's length.
    """
    base = parse_output(task, base_answer) or base_answer.strip()
    evidence = _evidence(task, item)
    if task.kind == "rating":
        try:
            direction = "higher than" if float(gold) > float(base) else "lower than" if float(gold) < float(base) \
                else "the same as"
        except ValueError:
            direction = "differently from"
        return f"{evidence} This user would score {direction} the initial {base}."
    if task.kind == "classification":
        verdict = "fits" if base == gold else "does not fit"
        return f"{evidence} The initial label {verdict} this user's labels."
    kept = words_from(gold, query)
    anchor = f'Keep the query\'s words "{_snippet(" ".join(kept), 10)}"' if kept else "Keep the content"
    return f"{evidence} {anchor}; about {len(gold.split())} words, in this user's wording and tone."


def prior_thinking(task: TaskSpec, profile: Sequence[ProfileItem], item: ProfileItem | None, gold: str,
                   query: str = "") -> str:
    """A rationale that starts from the user's usual answer and decides whether this query leaves it.

    Ratings and labels: the user's most frequent answer, the most similar item's answer, then whether
    ``gold`` keeps the usual answer, follows the similar item or leaves both. Text: the user's usual
    length and at most six of the query's words that ``gold`` keeps (short, so the answer fits).
    """
    outputs = past_outputs(task, profile)
    similar = str(task.item_output(item) or "").strip() if item else ""
    if task.kind == "generation":
        usual = f"This user writes about {median_words(outputs)} words." if outputs else ""
        kept = words_from(gold, query)
        return f'{usual} Keep "{_snippet(" ".join(kept), 6)}".'.strip() if kept else f"{usual} Rewrite it.".strip()
    if not outputs:
        return f"No history. The answer is {gold}."
    usual, count = Counter(outputs).most_common(1)[0]
    if task.kind == "rating":
        scores = rating_values(outputs)
        mean = f" (mean {sum(scores) / len(scores):.1f})" if scores else ""
        start = f"This user usually gives {usual}{mean}."
        similar_text = f" The most similar review got {similar}." if similar else ""
        leaves = _rating_change(gold, usual)
    else:
        start = f'This user most often chooses "{usual}" ({count} of {len(outputs)}).'
        similar_text = f' The most similar example is "{similar}".' if similar else ""
        leaves = f'This one is "{gold}", not their usual.'
    if gold == usual:
        decision = KEEPS
    elif similar and gold == similar:
        decision = f"{FOLLOWS}, this one is {gold}."
    else:
        decision = leaves
    return f"{start}{similar_text} {decision}"


def prior_decision(thinking: str) -> str:
    """Which decision a "prior" thinking took: "keep" the usual answer, "follow" the similar item, "leave", or "none"."""
    if KEEPS in thinking:
        return "keep"
    if FOLLOWS in thinking:
        return "follow"
    return "leave" if any(phrase in thinking for phrase in LEAVES) else "none"


def prior_usual(thinking: str) -> str:
    """The usual answer a "prior" thinking names ("usually gives 4", "most often chooses "comedy""), or ""."""
    found = re.search(r'usually gives (\d+(?:\.\d+)?)|most often chooses "([^"]*)"', thinking)
    return (found.group(1) or found.group(2)) if found else ""


def _rating_change(gold: str, usual: str) -> str:
    try:
        harsher = float(gold) < float(usual)
    except ValueError:
        return f"This one is {gold}, not their usual."
    return f"This review is {'harsher' if harsher else 'kinder'} than their usual: {gold}."


def _evidence(task: TaskSpec, item: ProfileItem | None) -> str:
    """The top-1 history item and the user's answer to it (once, when they are the same text)."""
    if not item:
        return "No similar example."
    document, shown = task.item_document(item), str(task.item_output(item))
    if document.strip() == shown.strip():
        return f'Similar example: "{_snippet(shown, 12)}".'
    return f'Similar example: "{_snippet(document)}" -> "{_snippet(shown, 12)}".'


def _plain(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


def words_from(text: str, source: str) -> list[str]:
    """The words of ``text`` that also occur in ``source`` (case and punctuation ignored), in order, once each."""
    seen, source_words, kept = set(), {_plain(w) for w in source.split()}, []
    for word in text.split():
        plain = _plain(word)
        if plain and plain in source_words and plain not in seen:
            seen.add(plain)
            kept.append(word.strip(".,;:!?\"'()"))
    return kept


def kept_input_words(source: str, gold: str) -> str:
    """The words of ``source`` that ``gold`` also uses (case and punctuation ignored), in ``source``'s order."""
    gold_words = {_plain(w) for w in gold.split()}
    return " ".join(w for w in source.split() if _plain(w) and _plain(w) in gold_words)


_UNSEEN = re.compile(r"^(?:[@#]\w|https?://|www\.)")


def without_unseen_handles(gold: str, seen_text: str) -> str:
    """``gold`` without @handles, #hashtags and URLs that ``seen_text`` lacks: the model cannot infer them."""
    seen = _plain(seen_text.replace(" ", ""))
    kept = [w for w in gold.split() if not (_UNSEEN.match(w) and _plain(w) not in seen)]
    return " ".join(kept) if kept else gold.strip()
