"""Retrievers: BM25, dense (real MiniLM), random and recency, plus query building and the factory."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalign.errors import ConfigError
from personalign.retrievers import get_retriever
from personalign.retrievers.base import build_query
from personalign.tasks import get_task

TASK = get_task("LaMP_3")


def review(text: str, i: int = 0, date: str | None = None) -> dict:
    item = {"id": f"p{i}", "text": text, "score": "4"}
    return item if date is None else {**item, "date": date}


PROFILE = [
    review("The blender is loud but crushes ice well.", 0),
    review("Guitar strings arrived quickly and sound bright.", 1),
    review("This novel was slow in the middle.", 2),
    review("Comfortable running shoes, good grip.", 3),
]

WORDS = st.sampled_from("guitar strings blender ice novel shoes the a good bad sound loud".split())
TEXTS = st.lists(WORDS, max_size=8).map(" ".join)
DATES = st.one_of(st.none(), st.sampled_from(["2013", "2013-04-02", "2014-01-01", "2012-12-31T10:00:00"]))
PROFILES = st.lists(st.tuples(TEXTS, DATES), max_size=25).map(
    lambda rows: [review(text, i, date) for i, (text, date) in enumerate(rows)]
)


# --- BM25 ---------------------------------------------------------------------------------


def test_bm25_puts_lexical_match_first():
    ranking = get_retriever("bm25").rank("new guitar strings for my band", PROFILE, TASK)
    assert ranking[0] == 1


def test_bm25_ties_prefer_newer_items():
    profile = [review("guitar strings", 0), review("blender", 1), review("guitar strings", 2)]
    assert get_retriever("bm25").rank("guitar", profile, TASK) == [2, 0, 1]


@pytest.mark.parametrize("query", ["pizza delivery", "", "!!! ..."])
def test_bm25_no_overlap_falls_back_to_recency(query):
    assert get_retriever("bm25").rank(query, PROFILE, TASK) == [3, 2, 1, 0]
    dated = [review("a b", 0, "2015-01-01"), review("c d", 1, "2012-01-01"), review("e f", 2, "2014-06-01")]
    assert get_retriever("bm25").rank(query, dated, TASK) == [0, 2, 1]


def test_bm25_reuses_index_for_same_profile():
    retriever = get_retriever("bm25")
    retriever.rank("guitar", PROFILE, TASK)
    retriever.rank("blender", list(PROFILE), TASK)
    assert len(retriever._indices) == 1


def test_bm25_index_builds_are_silent_when_the_root_logger_has_a_handler():
    # a fresh interpreter: pytest's own logging handlers would hide what a CLI run prints
    script = (
        "import logging; logging.basicConfig()\n"  # what rouge_score's absl import does in every eval
        "from personalign.retrievers import get_retriever; from personalign.tasks import get_task\n"
        "get_retriever('bm25').rank('guitar', [{'id': 'a', 'text': 'guitar strings', 'score': '4'}], get_task('LaMP_3'))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "Building index" not in run.stderr


def test_bm25_empty_profile():
    assert get_retriever("bm25").rank("guitar", [], TASK) == []


@settings(max_examples=60, deadline=None)
@given(profile=PROFILES, query=TEXTS, name=st.sampled_from(["bm25", "random", "recency"]))
def test_rankings_are_permutations(profile, query, name):
    ranking = get_retriever(name).rank(query, profile, TASK)
    assert sorted(ranking) == list(range(len(profile)))


# --- random and recency -------------------------------------------------------------------


def test_random_is_deterministic_per_seed_and_differs_across_seeds():
    profile = [review(f"item {i}", i) for i in range(30)]
    first = get_retriever("random", seed=1).rank("q", profile, TASK)
    assert first == get_retriever("random", seed=1).rank("q", profile, TASK)
    assert first != get_retriever("random", seed=2).rank("q", profile, TASK)
    assert first != get_retriever("random", seed=1).rank("another query", profile, TASK)


def test_recency_without_dates_is_newest_position_first():
    assert get_retriever("recency").rank("guitar", PROFILE, TASK) == [3, 2, 1, 0]


def test_recency_with_dates():
    profile = [
        review("a", 0, "2013-04-02"),
        review("b", 1, "2013"),
        review("c", 2),
        review("d", 3, "2014-01-01"),
        review("e", 4, "2013-04-02"),
        review("f", 5),
    ]
    assert get_retriever("recency").rank("q", profile, TASK) == [3, 4, 0, 1, 5, 2]


# --- query building, top_k, factory ---------------------------------------------------------


def test_build_query_after_marker():
    task_input = TASK.format_input("Great strings: bright sound.")
    assert build_query(TASK, task_input) == "Great strings: bright sound."


def test_build_query_without_marker_uses_first_colon():
    assert build_query(TASK, "Rate this: loud blender: broke") == "loud blender: broke"
    assert build_query(TASK, "  no colon here ") == "no colon here"


def test_build_query_appends_base_answer():
    task_input = TASK.format_input("Great strings.")
    assert build_query(TASK, task_input, " 5 ") == "Great strings. 5"
    assert build_query(TASK, task_input, None) == "Great strings."


def test_top_k():
    retriever = get_retriever("bm25")
    assert retriever.top_k("guitar strings", PROFILE, TASK, 2)[0] is PROFILE[1]
    assert len(retriever.top_k("guitar strings", PROFILE, TASK, 2)) == 2
    assert len(retriever.top_k("guitar strings", PROFILE, TASK, 99)) == len(PROFILE)
    assert retriever.top_k("guitar strings", PROFILE, TASK, 0) == []
    assert retriever.top_k("guitar strings", [], TASK, 3) == []


@pytest.mark.parametrize("spec", ["nope", "", "base", "bm25:extra", "recency:x"])
def test_get_retriever_rejects_bad_specs(spec):
    with pytest.raises(ConfigError):
        get_retriever(spec)


def test_get_retriever_rejects_unknown_option():
    with pytest.raises(ConfigError):
        get_retriever("bm25", colour="red")


# --- dense (real bundled MiniLM) -------------------------------------------------------------


@pytest.mark.model
def test_dense_semantic_match_ranks_first():
    profile = [
        review("This kitchen blender makes smoothies in seconds.", 0),
        review("Replacement set for an acoustic six-string; bright tone, easy to tune.", 1),
        review("The blender jar cracked after a week.", 2),
    ]
    ranking = get_retriever("dense").rank("my guitar strings snapped", profile, TASK)
    assert ranking[0] == 1
    assert sorted(ranking) == [0, 1, 2]


@pytest.mark.model
def test_dense_ties_prefer_newer_items():
    profile = [review("guitar strings", 0), review("blender", 1), review("guitar strings", 2)]
    assert get_retriever("dense").rank("guitar strings", profile, TASK)[:2] == [2, 0]


@pytest.mark.model
def test_dense_embedding_cache_on_disk(tmp_path):
    first = get_retriever("dense", cache_dir=tmp_path)
    ranking = first.rank("guitar strings", PROFILE, TASK)
    assert (tmp_path / "embeddings.sqlite").exists()
    assert len(first.store) == len(PROFILE) + 1

    second = get_retriever("dense", cache_dir=tmp_path)
    encoded: list[str] = []
    original = second.encode
    second.encode = lambda texts: encoded.extend(texts) or original(texts)
    assert second.rank("guitar strings", PROFILE, TASK) == ranking
    assert encoded == []
    second.rank("a brand new query", PROFILE, TASK)
    assert encoded == ["a brand new query"]


@pytest.mark.model
def test_dense_dot_product_option():
    retriever = get_retriever("dense", normalize=False)
    assert retriever.normalize is False
    assert sorted(retriever.rank("guitar", PROFILE, TASK)) == [0, 1, 2, 3]


@pytest.mark.model
def test_dense_unavailable_model_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot be fetched here"):
        get_retriever("dense:some-org/not-a-cached-model").rank("q", PROFILE, TASK)
