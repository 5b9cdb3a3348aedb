"""The lenient parsers read an answer as a reader would (issue 28): a table of model outputs per task family.

Each row is a raw completion and what a reader takes from it: the canonical answer, or U (unparsable,
scored as LaMP scores an invalid answer and counted in ``unparsable_rate``). The first rows of each
table are the issue's cases; the rest are our own.
"""

from __future__ import annotations

import pytest

from personalign.tasks import get_task
from personalign.tasks.filters import apply_filter
from personalign.tasks.parsing import is_answer, parse_output

U = "unparsable"
LONG_COLON_TITLE = "Aiming for a new perspective on the past of the field and what it means for all of us today:"

RATINGS = [  # LaMP_3
    ('1. 5 is the score for "Great blender, works as advertised"', '5'),
    ('1) 3', '3'),
    ('Not 1, it is 5', '5'),
    ('The reviewer gave 1 star out of 5, but I think 4', '4'),
    ('1. 1\n2. 2\n', U),
    ('1 2 3 4 5', U),
    ('1. 4', '4'),
    ('1) 2 is the score', '2'),
    ('- 3', '3'),
    ('* 5 stars', '5'),
    ('1. 1\n2. 2\n3.', U),
    ('1. The review is positive\n2. The product works', U),
    ('1. 3 is the score for "It broke after 2 days"', '3'),
    ('2 is the score for "Five stars, would buy again"', '2'),
    ('not 5, more like 2', '2'),
    ("I wouldn't give it a 5. It deserves 3.", '3'),
    ("It is not a 1: I'd say 4", '4'),
    ('Definitely not 2', U),
    ('On a scale of 1 to 5, I would rate it 4.', '4'),
    ('Rating: 2 out of 5', '2'),
    ("I'd give it 4/5", '4'),
    ('The user gave 5 stars before, but this review deserves 2', '2'),
    ('I would rate this review 3 on a scale of 1-5.', '3'),
    ('3/5', '3'),
    ('Score (1-5): 4', '4'),
    ('1, 2, 3, 4, or 5', U),
    ('3 or 4', U),
    ('Just answer with 1, 2, 3, 4, or 5', U),
    ('2\n3\n4', U),
    ('3-4', U),
    ('4\n\nThe reviewer liked the product but mentions 2 problems.', '4'),
    ('5. The reviewer loved it.', '5'),
    ('Answer: 4. They are a fan of the brand', '4'),
    ('3. The score of this review is 5.', '5'),
    ('1. The review is about a good microphone', U),
    ('1. First pedal\n2', U),
    ('The Planet Waves 1FRD1-2', U),
    ('1. 1: This review is positive,', '1'),
    ('1. The score is 1.\n2', '1'),
    ('The review has 120 words, so I rate it 4.', '4'),
    ('The product broke after 2 days, so the score is 1', '1'),
    ('five', '5'),
    ('Score: three', '3'),
    ("It's a 4.", '4'),
    ('The score would be 2', '2'),
    ('The score of this review is 3 stars, with a score of 4 stars for the sound', '3'),
    ("I'd rate it 4, but the reviewer gave 1 star", '4'),
    ("I'd say 3. Actually, I'd give it 4", '4'),
    ('**Rating:** 3', '3'),
    ('great product', U),
    ('The review has 120 words.', U),
    ('7', '7'),
    ('3.5', '3.5'),
    ('"4"', '4'),
    ('The score is "5"', '5'),
    ('"Works great, 5 stars"', U),
    # review of 2026-12-06: options after an assertion, negation scope, "No," as a correction
    ("I'd say 3 or 4.", U),
    ('The score is 3 or 4', U),
    ('I think 2, 3 or 4', U),
    ('No problems whatsoever so 5', '5'),
    ('No doubt about it: 4', '4'),
    ('5 stars? No, 4.', '4'),
    ('3. No, 2.', '2'),
    ('Not the worst product I own, so 4', '4'),
]

TAGS = [  # LaMP_2
    ('not comedy but action', 'action'),
    ('"The true story of a boxer who fights his way back"', U),
    ('"The true story of a boxer who', U),
    ('the tag for the movie: "A true story of two brothers" is "drama', U),
    ('the tag for the movie: "A true story of two brothers" is "classic"', 'classic'),
    ('comedy, action, drama', U),
    ('sci-fi / dystopia', U),
    ('tags: [sci-fi, based on a book, comedy, action, twist ending, dystopia]', U),
    ('comedy or romance', U),
    ('1. comedy\n2. action\n3. romance', U),
    ('1. comedy', 'comedy'),
    ('- dark comedy', 'dark comedy'),
    ('This is not a comedy, it is action.', 'action'),
    ("It isn't romance; I'd say thought-provoking.", 'thought-provoking'),
    ('Neither comedy nor romance: psychology', 'psychology'),
    ('Tag: classic', 'classic'),
    ('The answer is: Dark Comedy, because it mixes humor and death.', 'dark comedy'),
    ("I think it's comedy.", 'comedy'),
    ('comedy, comedy', 'comedy'),
    ('Action. The movie has car chases, not comedy.', 'action'),
    ('sci-fi, comedy, action. I choose action', 'action'),
    ('**Fantasy**', 'fantasy'),
    ('based on a book\nExplanation: it adapts a novel', 'based on a book'),
    ('The movie is a true story about a soldier.', 'true story'),
    ('Horror movie', U),
    ('', U),
    ('Violence', 'violence'),
    ('"twist ending"', 'twist ending'),
    ('social commentary and satire', 'social commentary'),
    ('This movie is not based on a book', U),
    # review of 2026-12-06
    ('I have no doubt it is comedy', 'comedy'),
    ('No problem: comedy', 'comedy'),
    ('Not only comedy', 'comedy'),
    ('Comedy? No, action.', 'action'),
    ('not the comedy', U),
    ("I wouldn't call it comedy; action.", 'action'),
    ("I'd say comedy or action", U),
]

CITATIONS = [  # LaMP_1
    ('[1]', '[1]'),
    ('[2]', '[2]'),
    ('2', '[2]'),
    ('Reference [2]', '[2]'),
    ('1. [2]', '[2]'),
    ('[1] or [2]', U),
    ('Not [1], [2]', '[2]'),
    ('[3]', U),
    ('The related reference is [1].', '[1]'),
    ('[1], [2]', U),
    ('1. [1]\n2. [2]', U),
    ("I'd answer [2] because the title matches", '[2]'),
    ('not [2] but [1]', '[1]'),
    ('[ 2 ]', '[2]'),
    ('The answer is 1', '[1]'),
    ('**[2]**', '[2]'),
    ('Reference: [1]', '[1]'),
    ('none of them', U),
    ('[2].', '[2]'),
    ('Answer: [1] (the first one)', '[1]'),
    ('1) [1]', '[1]'),
    ('- [2]', '[2]'),
    ('Neither [1] nor [2]', U),
    ('[1]\n[2]', U),
    ('It is [2], not [1].', '[2]'),
    ('1.5', U),
]

TEXTS = [  # LaMP_4 to LaMP_7: "" is unparsable (nothing but a lead-in)
    ('The title for the abstract of the paper is: Deep Parsing of Tweets', 'Deep Parsing of Tweets'),
    ('The title for the abstract of the paper is:\n"Deep Parsing of Tweets"', 'Deep Parsing of Tweets'),
    ('Here is the title:\nDeep Parsing of Tweets', 'Deep Parsing of Tweets'),
    ('Here is the title: Deep Parsing of Tweets', 'Deep Parsing of Tweets'),
    ('Title: Deep Parsing of Tweets', 'Deep Parsing of Tweets'),
    ("Sure! Here's a possible title for your paper:\n\n**Deep Parsing of Tweets**", 'Deep Parsing of Tweets'),
    ('Sure! Here you go: Deep Parsing of Tweets', 'Deep Parsing of Tweets'),
    ('Certainly. Here is a subject for the email.\nMeeting moved to Friday', 'Meeting moved to Friday'),
    ('Subject: Re: budget for Q3', 'Re: budget for Q3'),
    ('The subject of the email would be: Meeting moved to Friday', 'Meeting moved to Friday'),
    ('Paraphrased tweet: just got home, so tired', 'just got home, so tired'),
    ('**Title:** Deep Parsing of Tweets', 'Deep Parsing of Tweets'),
    ('Here is a headline for the article:\n\nTitle: Storm hits coast', 'Storm hits coast'),
    ('Parsing: A Survey of Methods', 'Parsing: A Survey of Methods'),
    ('Answer Set Programming: Theory and Practice', 'Answer Set Programming: Theory and Practice'),
    ('RT @friend: best day ever', 'RT @friend: best day ever'),
    ('Title Generation: A Survey', 'Title Generation: A Survey'),
    ('Here Comes the Sun\nA song title', 'Here Comes the Sun'),
    ('1. Deep Parsing of Tweets\n2. Parsing Tweets Deeply', 'Deep Parsing of Tweets'),
    ('- Deep Parsing of Tweets', 'Deep Parsing of Tweets'),
    ('A Study of X\n\nThis title reflects the abstract.', 'A Study of X'),
    ('"Neural Parsing of Tweets"', 'Neural Parsing of Tweets'),
    ('Here is the title:', ''),
    ('   ', ''),
    ('Sure! Here is a title for the abstract:', ''),
    ('Okay, the new subject line is: lunch on Friday?', 'lunch on Friday?'),
    ('Meeting at 3: room change', 'Meeting at 3: room change'),
    ('2020: A Year in Review', '2020: A Year in Review'),
    ('Recent Research:\n\nRecent Research:\n\nRecent Research', 'Recent Research'),
    ('We: \n- \n- \n-', ''),
    ('The title for the paper "Parsing tweets with deep networks" is "Deep Parsing of Tweets"',
     'Deep Parsing of Tweets'),
    ('The title is "Deep Parsing of Tweets', 'Deep Parsing of Tweets'),
    ('The subject is "Lunch" and the subject of the next one is "Dinner"', 'Lunch'),
    ('The answer to "is it raining" is yes', 'The answer to "is it raining" is yes'),
    ('The title for the abstract of a paper on advances in natural language inference (NLI) is: NLI Advances',
     'NLI Advances'),
    (LONG_COLON_TITLE, LONG_COLON_TITLE),  # the last line, and no lead-in: content
    ("Here is a paraphrase of the tweet: can't wait for the weekend!!", "can't wait for the weekend!!"),
    ('The headline is: Storm hits coast', 'Storm hits coast'),
    # review of 2026-12-06: a title with a colon is not a lead-in; a courtesy opener on the line is
    ('Generating Headlines: A Neural Approach', 'Generating Headlines: A Neural Approach'),
    ('Extractive vs Abstractive Summary: An Evaluation', 'Extractive vs Abstractive Summary: An Evaluation'),
    ('What Makes a Good Answer: Evidence from Forums', 'What Makes a Good Answer: Evidence from Forums'),
    ('Who Is: A Lookup Service', 'Who Is: A Lookup Service'),
    ('Headline: Storm hits coast', 'Storm hits coast'),
    ('Answer: Deep Nets', 'Deep Nets'),
    ('Sure! "Deep Nets"', 'Deep Nets'),
    ('Certainly. "Deep Nets for Tweets"', 'Deep Nets for Tweets'),
    ('Of course, "Deep Nets"', 'Deep Nets'),
    ('Okay! Deep Nets', 'Deep Nets'),
    ('Here you go. Deep Nets', 'Deep Nets'),
    ('OK Computer: A Retrospective', 'OK Computer: A Retrospective'),
]

def read(task_name: str, raw: str) -> str:
    """What the lenient parser reads, with every unparsable answer shown as U."""
    task = get_task(task_name)
    parsed = parse_output(task, raw)
    return parsed if is_answer(task, parsed) or task.kind == "generation" else U


@pytest.mark.parametrize("raw,expected", RATINGS)
def test_ratings_read_as_a_reader_would(raw, expected):
    assert read("LaMP_3", raw) == expected


@pytest.mark.parametrize("raw,expected", TAGS)
def test_tags_read_as_a_reader_would(raw, expected):
    assert read("LaMP_2", raw) == expected


@pytest.mark.parametrize("raw,expected", CITATIONS)
def test_citations_read_as_a_reader_would(raw, expected):
    assert read("LaMP_1", raw) == expected


@pytest.mark.parametrize("task_name", ["LaMP_4", "LaMP_5", "LaMP_6", "LaMP_7"])
@pytest.mark.parametrize("raw,expected", TEXTS)
def test_texts_read_as_a_reader_would(task_name, raw, expected):
    assert read(task_name, raw) == expected


def test_the_tables_are_big_enough():
    assert min(len(RATINGS), len(TAGS), len(CITATIONS), len(TEXTS)) >= 25


def test_an_unparsable_answer_stays_the_raw_text_so_the_metric_scores_it_as_lamp_does():
    lamp3 = get_task("LaMP_3")
    assert parse_output(lamp3, "1. 1\n2. 2\n") == "1. 1\n2. 2"  # not a number: the far end of the scale
    assert parse_output(get_task("LaMP_2"), "comedy, action, drama") == "comedy, action, drama"
    assert apply_filter(get_task("LaMP_5"), "plain", "Here is the title:").prediction == ""  # not the lead-in


@pytest.mark.parametrize("raw", ['1. 5 is the score for "fine"', "Not 1, it is 5", "1. 1\n2. 2"])
def test_official_mode_parses_nothing(raw):
    assert apply_filter(get_task("LaMP_3"), "plain", raw, None, "official").prediction == raw.strip()


PROMPT = ('the tag for the movie: "The true story of a boxer who, in the 1920’s, makes a comeback" is "true story", '
          'and 4 is the score for "Works well, five stars from me". description: A boxer fights his way back.')
ECHOES = [  # (task, completion, expected) with PROMPT as the prompt the model saw
    ("LaMP_2", 'The tag for the movie: "The true story', U),
    ("LaMP_2", 'The user\'s answer is: "The true story of a boxer who, in the 1920s, makes a comeback"', U),
    ("LaMP_2", 'The user\'s answer is: "The movie is a classic drama with a touch of romance"', "classic"),
    ("LaMP_2", 'The user\'s answer is: "A classic, classic, classic', "classic"),
    ("LaMP_2", '"The movie is a dark comedy", and the tag is "A boxer fights his way back', "dark comedy"),
    ("LaMP_2", 'the tag for the movie: "A boxer fights his way back" is "true story"', "true story"),
    ("LaMP_3", '1. 5 is the score for "Works well, five stars from me"', "5"),
    ("LaMP_3", 'The user would say "great value, 4 stars"', "4"),
]


@pytest.mark.parametrize("task_name,raw,expected", ECHOES)
def test_a_quotation_is_an_echo_when_it_is_copied_from_the_prompt(task_name, raw, expected):
    task = get_task(task_name)
    trace = {"prompts": [[{"role": "user", "content": PROMPT}]]}
    parsed = apply_filter(task, "plain", raw, trace).prediction
    assert (parsed if is_answer(task, parsed) else U) == expected
