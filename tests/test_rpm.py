"""RPM: feature JSON validation and retry, factor statistics, feature retrieval, incremental user models.

Orchestration tests use FakeRuleLLM and FakeWordEncoder (named fakes); one test runs the real bundled model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import VOCAB, FakeRuleLLM

from personalign.methods import build_method
from personalign.methods.base import MethodConfig
from personalign.rpm.user_model import ItemModel, build_factors, parse_features
from personalign.store import profile_key
from personalign.tasks import get_task
from personalign.types import Example

TOPICS = {"jazz": 0, "piano": 0, "rock": 0, "guitar": 0, "angry": 1, "happy": 1, "refund": 2, "broken": 2}


class FakeWordEncoder:
    """Fake encoder: a word's topic (music, mood, problem) plus a little of the word itself, so that
    similarity is known exactly."""

    model_id = "fake-words"

    def embed(self, texts):
        def vector(text):
            words = [w for w in VOCAB if w in text.lower()]
            topics = [float(any(TOPICS[w] == t for w in words)) for t in range(3)]
            return topics + [0.3 * float(w in words) for w in VOCAB] + [0.01]
        return np.array([vector(t) for t in texts], dtype=np.float32)

    def prepare(self, vectors):
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def rpm(task="LaMP_3", llm=None, **options):
    method = build_method("rpm", get_task(task), llm=llm or FakeRuleLLM(), **options)
    method.encoder = FakeWordEncoder()
    return method


def reviews(*texts_scores):
    return [{"id": f"r{i}", "text": text, "score": score} for i, (text, score) in enumerate(texts_scores)]


@pytest.mark.parametrize("text, expected", [
    ('{"features": ["jazz", " slow  tempo "]}', ["jazz", "slow tempo"]),
    ('Sure! {"features": ["rock"]} hope that helps', ["rock"]),
    ('{"features": []}', None),                      # at least one feature
    ('{"features": ["a", "b", "c", "d", "e", "f", "g"]}', None),  # at most six
    ('{"features": ["", "x"]}', None),
    ('{"features": ["...", "..."]}', None),          # the prompt's placeholder copied: no feature (seen on SmolLM2)
    ('{"features": ["jazz", "-"]}', None),
    ('{"features": ["<first feature>", "jazz"]}', None),
    ('{"feature": ["jazz"]}', None),
    ("features: jazz", None),
    ('{"features": ' + "[" * 5000 + "]" * 5000 + "}", None),  # deep nesting: refused, no RecursionError
])
def test_feature_json_is_validated(text, expected):
    assert parse_features(text) == expected


def test_malformed_features_are_retried_then_skipped_and_counted():
    profile = reviews(("broken piano, refund please", "1"), ("happy with the guitar", "5"), ("rock on", "4"))
    llm = FakeRuleLLM(bad=("guitar",), always_bad=("rock on",))
    method = rpm(llm=llm)
    answer = method.answer(Example("q", "review: an angry refund story"), profile)
    cost = answer.trace.extra["rpm_build_cost"]
    assert cost["retried"] == 2 and cost["skipped"] == 1  # guitar succeeded on retry; "rock on" never did
    model = next(iter(method.models._items.values()))
    assert sorted(i.answer for i in model.items.values()) == ["1", "5"]
    assert cost["calls"] == 3 + 2 + 2  # 3 extractions, 2 retries, 2 paths


def test_factor_statistics_on_a_hand_made_profile():
    task = get_task("LaMP_3")
    items = {"a": ItemModel("a", "", "5", ["jazz", "piano"]), "b": ItemModel("b", "", "4", ["jazz"]),
             "c": ItemModel("c", "", "1", ["broken", "refund"]), "d": ItemModel("d", "", "5", ["piano"])}
    music, problems = build_factors(task, items, FakeWordEncoder().embed, max_factors=2)  # most frequent first
    assert music.features == ["jazz", "piano"] and music.name == "jazz" and music.item_keys == ["a", "b", "d"]
    assert music.frequency == 0.75 and music.answers == "5 67%, 4 33%"
    assert problems.features == ["broken", "refund"] and problems.frequency == 0.25 and problems.answers == "1 100%"
    assert "jazz (in 75% of the history; answers: 5 67%, 4 33%)" in music.line()


def test_retrieval_ranks_by_features_not_raw_text():
    # r0 shares the query's words ("the", "guitar", "store") but its features are about refunds;
    # r1 shares none of the query's words but has its features (angry, broken)
    profile = reviews(("the guitar store sent a refund", "3"), ("furious: it arrived broken, angry", "1"),
                      ("happy piano", "5"))
    method = rpm(config=MethodConfig(k=1))
    answer = method.answer(Example("q", "review: the guitar store: angry, it was broken"), profile)
    assert answer.trace.retrieved_ids == ["r1"]
    assert "broken" in answer.trace.extra["rpm_query_features"]


def test_incremental_update_equals_a_full_rebuild_and_costs_only_the_new_items():
    profile = reviews(("jazz piano", "5"), ("broken refund", "1"), ("rock guitar", "4"), ("happy jazz", "5"),
                      ("angry refund", "2"))
    grown = rpm()
    grown.answer(Example("q1", "review: jazz", user_id="u"), profile[:3])
    calls_before = len(grown.llm.prompts)
    grown.answer(Example("q2", "review: jazz", user_id="u"), profile)
    new_calls = len(grown.llm.prompts) - calls_before
    assert new_calls == 2 + 2 + 1 + 1  # features and paths of the 2 new items, the query's features, the answer
    full = rpm()
    full.answer(Example("q2", "review: jazz", user_id="u"), profile)
    key = profile_key(profile)
    assert grown.models.get(key).content() == full.models.get(key).content()


def test_user_models_persist_in_the_cache_folder(tmp_path):
    profile = reviews(("jazz piano", "5"), ("broken refund", "1"))
    first = rpm(cache_dir=tmp_path)
    first.answer(Example("q", "review: jazz"), profile)
    again = rpm(cache_dir=tmp_path)
    again.answer(Example("q", "review: jazz"), profile)
    assert not any("explain how" in p for p in again.llm.prompts)  # the stored model was reused


@pytest.mark.model
def test_rpm_end_to_end_on_the_bundled_model():
    from personalign.backends import get_llm
    from personalign.data.lamp_io import load_split

    task = get_task("LaMP_3")
    examples = load_split(Path(__file__).parents[1] / "personalign/data/examples", task, "user", "dev")[0][:2]
    method = build_method("rpm", task, llm=get_llm("llamacpp", quant="q8_0"), max_items=4)
    for example in examples:
        answer = method.answer(example, example.profile)
        cost = answer.trace.extra["rpm_build_cost"]
        assert cost["calls"] >= 2 and cost["skipped"] < 4  # the JSON grammar makes extraction parse
        assert answer.trace.extra["rpm_factors"] and answer.trace.extra["rpm_query_features"]
        final_prompt = answer.trace.prompts[-1][-1]["content"]  # generation is guided by the factors
        assert answer.raw.strip() and all(f in final_prompt for f in answer.trace.extra["rpm_factors"])
