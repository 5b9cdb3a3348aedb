"""Baseline methods: prompts, retrieval, caching and parsing (orchestration, with a fake LLM)."""

import pytest
from fakes import FakeHashLLM

from personalign.methods import build_method
from personalign.methods.base import MethodConfig
from personalign.retrievers import get_retriever
from personalign.tasks import get_task
from personalign.types import Example

LAMP2 = get_task("LaMP_2")
LAMP3 = get_task("LaMP_3")
LAMP5 = get_task("LaMP_5")

PROFILE3 = [
    {"text": "strings snapped after a week", "score": "2", "id": "a", "date": "2020-01-01"},
    {"text": "lovely warm tone, great strings", "score": "5", "id": "b", "date": "2020-02-01"},
    {"text": "the blender is loud", "score": "3", "id": "c", "date": "2020-03-01"},
    {"text": "cable works", "score": "4", "id": "d", "date": "2020-04-01"},
    {"text": "tuner is accurate", "score": "4", "id": "e", "date": "2020-05-01"},
]
EXAMPLE3 = Example(id="q", input=LAMP3.format_input("these strings have a warm tone"), profile=PROFILE3)


def method(name, task=LAMP3, answers=("4",), **config):
    llm = FakeHashLLM(list(answers))
    return build_method(name, task, llm=llm, retriever=get_retriever("bm25"), config=MethodConfig(**config)), llm


def test_zero_shot_sends_only_the_input():
    m, llm = method("zero-shot")
    answer = m.answer(EXAMPLE3, PROFILE3)
    assert m.final(answer).prediction == "4"
    assert answer.trace.prompts[0][-1]["content"] == EXAMPLE3.input
    assert answer.trace.retrieved_ids == [] and llm.calls == 1


def test_rag_puts_top_k_retrieved_items_before_the_input():
    m, _ = method("rag", k=2)
    answer = m.answer(EXAMPLE3, PROFILE3)
    prompt = answer.trace.prompts[0][-1]["content"]
    assert answer.trace.retrieved_ids[0] == "b"  # shares "warm", "tone", "strings"
    assert len(answer.trace.retrieved_ids) == 2
    assert '5 is the score for "lovely warm tone, great strings"' in prompt
    assert prompt.endswith(EXAMPLE3.input)


def test_icl_uses_the_most_recent_items():
    m, _ = method("icl", k=2)
    answer = m.answer(EXAMPLE3, PROFILE3)
    assert answer.trace.retrieved_ids == ["e", "d"]


def test_pag_summary_is_written_once_per_user_and_its_tokens_are_counted(tmp_path):
    from personalign.backends._cached import CachedLLM

    inner = FakeHashLLM(["likes strings"])
    llm = CachedLLM(inner, tmp_path / "llm.sqlite")
    m = build_method("pag", LAMP3, llm=llm, retriever=get_retriever("bm25"))
    first = m.answer(EXAMPLE3, PROFILE3)
    assert inner.calls == 2 and "About this user: likes strings" in first.trace.prompts[-1][-1]["content"]
    second = m.answer(Example(id="q2", input=LAMP3.format_input("cheap cable"), profile=PROFILE3), PROFILE3)
    assert inner.calls == 3  # the summary came from the cache
    assert second.trace.stages == ["summary", "answer"] and second.trace.cached_calls == 1
    assert second.trace.prompt_tokens == sum(len(p[-1]["content"].split()) for p in second.trace.prompts)
    other = build_method("pag", LAMP3, llm=llm, retriever=get_retriever("bm25"), config=MethodConfig(summary_items=2))
    other.answer(EXAMPLE3, PROFILE3)
    assert inner.calls == 4  # another summary setting is another prompt: a new summary, never a stale one


def test_cot_reads_the_answer_after_the_marker_and_asks_to_think():
    m, _ = method("cot-rag", answers=["The user is lenient with strings.\nAnswer: 5 stars"])
    answer = m.answer(EXAMPLE3, PROFILE3)
    assert m.final(answer).prediction == "5"
    assert "Answer:" in answer.trace.prompts[0][-1]["content"]


def test_user_prior_majority_label_mean_rating_and_nearest_output():
    prior = build_method("user-prior", LAMP3, retriever=get_retriever("bm25"))
    assert prior.answer_text(EXAMPLE3, PROFILE3) == "3.6"  # (2+5+3+4+4)/5
    tags = [{"description": d, "tag": t, "id": str(i)} for i, (d, t) in
            enumerate([("x", "comedy"), ("y", "action"), ("z", "comedy"), ("w", "action"), ("v", "Action")])]
    prior2 = build_method("user-prior", LAMP2, retriever=get_retriever("bm25"))
    assert prior2.answer_text(Example("q", "description: a film", tags), tags) == "action"
    papers = [{"title": "Neural Parsing", "abstract": "we parse sentences with neural nets", "id": "p1"},
              {"title": "Fish Migration", "abstract": "salmon swim upstream", "id": "p2"}]
    prior5 = build_method("user-prior", LAMP5, retriever=get_retriever("bm25"))
    assert prior5.answer_text(Example("q", LAMP5.format_input("a neural model to parse sentences"), papers), papers) == "Neural Parsing"


def test_user_prior_with_empty_profile_gives_empty_answer():
    prior = build_method("user-prior", LAMP3, retriever=get_retriever("bm25"))
    assert prior.answer_text(Example("q", "review: x", []), []) == ""


def test_tfidf_linear_learns_the_words_of_the_train_users_not_the_user():
    reviews = [("great sound, love it", "5"), ("broken on arrival, awful", "1"), ("love the great tone", "5"),
               ("awful, broken after a day", "1")]
    profile = [{"text": t, "score": s, "id": str(i)} for i, (t, s) in enumerate(reviews)]
    train = [Example("t1", LAMP3.format_input("great strings, love them"), profile)]
    model = build_method("tfidf-linear", LAMP3)
    model.fit(train, {"t1": "5"})
    lenient_user = [{"text": "fine", "score": "5", "id": "u"}]
    harsh_words = int(model.answer_text(Example("q1", LAMP3.format_input("awful and broken"), lenient_user), lenient_user))
    kind_words = int(model.answer_text(Example("q2", LAMP3.format_input("I love it, great"), []), []))
    assert harsh_words <= 2 and kind_words >= 4  # the lenient user's history does not lift the harsh review
    tags = [{"description": d, "tag": t, "id": str(i)} for i, (d, t) in
            enumerate([("spaceships and aliens", "sci-fi"), ("jokes and laughs", "comedy"), ("aliens invade", "sci-fi")])]
    model2 = build_method("tfidf-linear", LAMP2)
    model2.fit([Example("t2", "description: more jokes", tags)], {"t2": "comedy"})
    assert model2.answer_text(Example("q3", "description: aliens on a spaceship", []), []) == "sci-fi"


def test_tfidf_user_adds_the_users_labels_and_leniency_to_the_text_model():
    tags = [{"description": d, "tag": t, "id": str(i)} for i, (d, t) in
            enumerate([("aliens and jokes", "sci-fi"), ("aliens and jokes", "comedy"), ("spaceships", "sci-fi"),
                       ("laughs", "comedy")])]
    train = [Example("t", "description: more aliens", tags)]
    text_only, with_user = build_method("tfidf-linear", LAMP2), build_method("tfidf-user", LAMP2)
    text_only.fit(train, {"t": "sci-fi"})
    with_user.fit(train, {"t": "sci-fi"})
    comedy_fan = [{"description": f"film {i}", "tag": "comedy", "id": str(i)} for i in range(5)]
    query = Example("q", "description: aliens and jokes", comedy_fan)
    assert text_only.answer_text(query, comedy_fan) == "sci-fi"
    assert with_user.answer_text(query, comedy_fan) == "comedy"
    reviews = [{"text": t, "score": s, "id": str(i)} for i, (t, s) in
               enumerate([("great", "5"), ("awful", "1"), ("fine", "3"), ("great fun", "5"), ("awful mess", "1")])]
    rating = build_method("tfidf-user", LAMP3)
    rating.fit([Example("t3", LAMP3.format_input("fine enough"), reviews)], {"t3": "3"})
    harsh = [{"text": "x", "score": "1", "id": "h"}, {"text": "y", "score": "2", "id": "i"}]
    lenient = [{"text": "x", "score": "5", "id": "h"}, {"text": "y", "score": "5", "id": "i"}]
    review = Example("q3", LAMP3.format_input("fine"), [])
    assert int(rating.answer_text(review, harsh)) < int(rating.answer_text(review, lenient))


def test_tfidf_linear_refuses_what_it_cannot_do():
    from personalign.errors import ConfigError

    with pytest.raises(ConfigError, match="applies to"):
        build_method("tfidf-linear", LAMP5)
    with pytest.raises(ConfigError, match="method tfidf-linear: ridge_alfa: unknown option; known: ngram_max"):
        build_method("tfidf-linear", LAMP3, ridge_alfa=2.0)
    with pytest.raises(ConfigError, match="two kinds"):
        build_method("tfidf-linear", LAMP3).fit([Example("t", LAMP3.format_input("good"), [])], {"t": "5"})
    with pytest.raises(RuntimeError, match="fitted"):
        build_method("tfidf-linear", LAMP3).answer_text(EXAMPLE3, PROFILE3)


def test_methods_need_what_they_use():
    from personalign.errors import ConfigError

    with pytest.raises(ConfigError):
        build_method("rag", LAMP3, llm=None)
    with pytest.raises(ConfigError, match="unknown method"):
        build_method("no-such-method", LAMP3)
