"""Output parsing edge cases: case, quotes, prefixes, units, extra text, chain-of-thought."""

import pytest

from personalign.tasks import get_task
from personalign.tasks.parsing import final_answer_segment, parse_output

LAMP2, LAMP3, LAMP5, LAMP1 = (get_task(n) for n in ("LaMP_2", "LaMP_3", "LaMP_5", "LaMP_1"))


@pytest.mark.parametrize("raw,expected", [
    ("sci-fi", "sci-fi"),
    ("Sci-Fi", "sci-fi"),
    ("Tag: Sci-Fi", "sci-fi"),
    ('"dark comedy"', "dark comedy"),
    ("'Dark Comedy'.", "dark comedy"),
    ("The answer is: Dark Comedy, because it mixes humor and death.", "dark comedy"),
    ("I think it's comedy.", "comedy"),
    ("**True Story**", "true story"),
    ("based on a book\nExplanation: the description mentions a novel", "based on a book"),
    ("horror", "horror"),
])
def test_label_parsing(raw, expected):
    assert parse_output(LAMP2, raw) == expected


def test_label_outside_set_is_kept_raw_and_scored_wrong():
    assert parse_output(LAMP2, "  Horror movie ") == "Horror movie"


@pytest.mark.parametrize("raw,expected", [("[1]", "[1]"), ("2", "[2]"), ("Reference [2]", "[2]")])
def test_citation_labels(raw, expected):
    assert parse_output(LAMP1, raw) == expected


def test_citation_label_outside_set_stays_invalid():
    assert parse_output(LAMP1, "[3]") not in LAMP1.labels


@pytest.mark.parametrize("raw,expected", [
    ("4", "4"),
    (" 5.", "5"),
    ("4 stars", "4"),
    ("Score: 3", "3"),
    ("On a scale of 1 to 5, I would rate it 4.", "4"),
    ("I'd give it 4/5", "4"),
    ("four", "4"),
    ("3.5", "3.5"),
    ("Rating: 2 out of 5", "2"),
    ("great product", "great product"),
    ("7", "7"),
    ("The review has 120 words, so I rate it 4.", "4"),
    ("The review has 120 words.", "The review has 120 words."),
    ("Answer: 0", "Answer: 0"),  # out of scale in free text: unparseable, as the official float() would say
])
def test_rating_parsing(raw, expected):
    assert parse_output(LAMP3, raw) == expected


@pytest.mark.parametrize("raw,expected", [
    ('Title: "Neural Parsing of Tweets"', "Neural Parsing of Tweets"),
    ("Here is a title for the abstract:\n\nDeep Learning for Parsing", "Deep Learning for Parsing"),
    ("Sure! Here's the subject:\nMeeting moved to Friday", "Meeting moved to Friday"),
    ("A Study of X\n\nThis title reflects the abstract.", "A Study of X"),
    ("   ", ""),
])
def test_text_parsing(raw, expected):
    assert parse_output(LAMP5, raw) == expected


def test_final_answer_segment_reads_after_last_answer_marker():
    raw = "The user tags space films as sci-fi. Answer: maybe action?\nFinal answer: sci-fi"
    assert parse_output(LAMP2, final_answer_segment(raw)) == "sci-fi"
    assert final_answer_segment("thinking...\nlast line") == "last line"
