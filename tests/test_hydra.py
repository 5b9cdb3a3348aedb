"""HYDRA: the factorized scorer (shared training, user heads, fallback) and the method's orchestration.

Orchestration tests use FakeTagLLM and FakeTagEncoder (named fakes); one test runs the real bundled model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from personalign.backends.base import LLM
from personalign.errors import ConfigError
from personalign.hydra.scorer import FactorizedScorer, ScorerConfig
from personalign.methods import build_method
from personalign.methods.base import MethodConfig
from personalign.retrievers import get_retriever
from personalign.tasks import get_task
from personalign.types import Completion, Example, GenParams, Messages

TAGS = ["comedy", "action", "romance", "fantasy"]


def toy_groups(rng: np.random.Generator, column: int, count: int, size: int = 6, dim: int = 8):
    groups = []
    for _ in range(count):
        x = rng.normal(size=(size, dim)).astype(np.float32)
        groups.append((x, x[:, column].copy()))
    return groups


def rank_agreement(scores: np.ndarray, utilities: np.ndarray) -> float:
    """Share of candidate pairs that the scores order as the utilities do."""
    pairs = [(i, j) for i in range(len(scores)) for j in range(i + 1, len(scores))]
    return float(np.mean([(scores[i] - scores[j]) * (utilities[i] - utilities[j]) > 0 for i, j in pairs]))


def test_the_shared_scorer_learns_a_ranking_from_train_groups():
    rng = np.random.default_rng(0)
    scorer = FactorizedScorer(8, ScorerConfig(hidden=16, epochs=15, seed=0))
    before = np.mean([rank_agreement(scorer.score(x), y) for x, y in toy_groups(np.random.default_rng(9), 0, 40)])
    losses = scorer.fit_shared(toy_groups(rng, 0, 200))
    after = np.mean([rank_agreement(scorer.score(x), y) for x, y in toy_groups(np.random.default_rng(9), 0, 40)])
    assert losses[-1] < losses[0]
    assert after > 0.85 and after > before + 0.2


def test_a_user_head_follows_the_users_own_ranking_and_falls_back_without_signal():
    scorer = FactorizedScorer(8, ScorerConfig(hidden=16, epochs=15, head_steps=80, head_l2=0.01, seed=0))
    rng = np.random.default_rng(1)
    scorer.fit_shared(toy_groups(rng, 0, 100) + toy_groups(rng, 1, 100))  # the population: columns 0 and 1
    user = toy_groups(np.random.default_rng(2), 1, 12)                      # this user: column 1 only
    head = scorer.fit_head(user)
    held_out = toy_groups(np.random.default_rng(3), 1, 40)
    shared = np.mean([rank_agreement(scorer.score(x), y) for x, y in held_out])
    personal = np.mean([rank_agreement(scorer.score(x, head), y) for x, y in held_out])
    assert head is not None and head.shape == (17,)
    assert personal > shared + 0.05, (personal, shared)
    tied = [(x, np.zeros(len(x), dtype=np.float32)) for x, _ in user]
    assert scorer.fit_head(tied) is None  # nothing to learn: the caller uses the shared head


def test_a_scorer_round_trips_through_bytes():
    scorer = FactorizedScorer(8, ScorerConfig(hidden=8, epochs=2))
    scorer.fit_shared(toy_groups(np.random.default_rng(0), 0, 10))
    again = FactorizedScorer.from_bytes(scorer.to_bytes())
    x = np.random.default_rng(4).normal(size=(5, 8)).astype(np.float32)
    assert np.allclose(scorer.score(x), again.score(x)) and again.losses == scorer.losses


class FakeTagLLM(LLM):
    """Fake for orchestration: greedy answers "comedy"; a sample with seed s answers TAGS[s % 4]."""

    def __init__(self):
        self.name, self.calls = "fake-tag", 0

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        self.calls += 1
        return Completion("comedy" if params.temperature == 0 else TAGS[params.seed % len(TAGS)], 20, 2)


class FakeTagEncoder:
    """Fake encoder: one dimension per tag word and per plot word, so similarity is known exactly."""

    model_id = "fake-tags"
    words = TAGS + ["space", "love", "laugh", "fight", "magic"]

    def embed(self, texts):
        return np.array([[float(w in t.lower()) for w in self.words] + [0.05] for t in texts], dtype=np.float32)


def user(index: int, tag: str, items: int, other: str | None = None) -> list[dict]:
    """A user who answers ``tag``, except the last two items, which are ``other`` (when given)."""
    plots = ["space", "love", "laugh", "fight", "magic"]
    return [{"id": f"u{index}-{i}", "description": f"a film about {plots[(i + index) % 5]} number {i}",
             "tag": other if other and i >= items - 2 else tag} for i in range(items)]


def fitted_hydra(tmp_path: Path, **options):
    task = get_task("LaMP_2")
    llm = FakeTagLLM()
    method = build_method("hydra", task, llm=llm, retriever=get_retriever("bm25"), config=MethodConfig(k=2),
                          cache_dir=tmp_path, samples=4, train_questions=40, adapter_train_questions=24, epochs=30,
                          **options)
    method.encoder = FakeTagEncoder()
    train = [Example(f"t{i}", task.format_input(f"a film about space {i}"), user(i, TAGS[i % 4], 8)) for i in range(40)]
    method.fit(train, {e.id: TAGS[i % 4] for i, e in enumerate(train)})  # every train user answers their own tag
    return task, method, llm


def test_hydra_picks_the_candidate_that_fits_the_user_and_reports_its_trace(tmp_path):
    task, method, llm = fitted_hydra(tmp_path)
    for tag in ("romance", "fantasy", "action"):
        example = Example("q", task.format_input("a film about love and space"), user(99, tag, 8, other="comedy"))
        answer = method.answer(example, example.profile)
        trace = answer.trace
        assert method.final(answer).prediction == tag          # greedy would say "comedy"
        assert trace.stages == ["hydra_candidates"] * 4 and len(trace.retrieved_ids) == 2
        assert trace.extra["hydra_heads"] == {"reranker": "user", "adapter": "user"}
        assert len(trace.extra["hydra_candidates"]) == 4 and sum("*" in c for c in trace.extra["hydra_candidates"]) == 1
        assert trace.extra["hydra_user"]["bytes"] == 2 * 65 * 4
    assert method.scorer_path is not None and method.scorer_path.is_file()


def test_an_unseen_user_with_few_items_gets_the_shared_heads(tmp_path):
    task, method, _ = fitted_hydra(tmp_path, min_user_items=6)
    example = Example("q", task.format_input("a film about magic"), user(7, "fantasy", 3))
    trace = method.answer(example, example.profile).trace
    assert trace.extra["hydra_heads"] == {"reranker": "shared", "adapter": "shared"}
    assert trace.extra["hydra_user"]["bytes"] == 0


def test_user_heads_come_from_the_profile_alone(tmp_path):
    _, method, _ = fitted_hydra(tmp_path)
    profile = user(5, "romance", 8)
    first = method.user_heads(profile)["adapter"]
    method.heads = type(method.heads)(8)       # fresh cache: fit again from the same items
    assert np.array_equal(first, method.user_heads(profile)["adapter"])
    changed = [{**item, "tag": "action"} if i < 4 else item for i, item in enumerate(profile)]
    assert not np.array_equal(first, method.user_heads(changed)["adapter"])


def test_a_saved_scorer_is_loaded_without_training_and_a_bad_one_is_one_line(tmp_path):
    task, method, _ = fitted_hydra(tmp_path)
    loaded = build_method("hydra", task, llm=FakeTagLLM(), retriever=get_retriever("bm25"), config=MethodConfig(k=2),
                          scorer=str(method.scorer_path), samples=4)
    loaded.encoder = FakeTagEncoder()
    example = Example("q", task.format_input("a film about love"), user(3, "romance", 8))
    assert loaded.answer_text(example, example.profile) == method.answer_text(example, example.profile)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="bad.pt: not a HYDRA scorer file"):
        build_method("hydra", task, llm=FakeTagLLM(), retriever=get_retriever("bm25"), scorer=str(bad))
    unfitted = build_method("hydra", task, llm=FakeTagLLM(), retriever=get_retriever("bm25"))
    with pytest.raises(ConfigError, match="fitted on the train split"):
        unfitted.answer(example, example.profile)


@pytest.mark.model
def test_hydra_end_to_end_on_the_bundled_model(tmp_path):
    from personalign.backends.llamacpp import LlamaCppLLM

    task = get_task("LaMP_2")
    method = build_method("hydra", task, llm=LlamaCppLLM(n_ctx=2048), retriever=get_retriever("bm25"),
                          config=MethodConfig(k=2), cache_dir=tmp_path, samples=3, train_questions=6,
                          adapter_train_questions=3, epochs=5, min_user_items=4)
    train = [Example(f"t{i}", task.format_input(f"A {w} story."), user(i, tag, 6, other="classic"))
             for i, (w, tag) in enumerate([("funny", "comedy"), ("war", "action"), ("love", "romance")] * 2)]
    method.fit(train, {e.id: e.profile[0]["tag"] for e in train})
    example = Example("q", task.format_input("Two friends laugh through a road trip."), user(9, "comedy", 6))
    answer = method.answer(example, example.profile)
    assert len(answer.trace.raw_outputs) == 3 and answer.raw in answer.trace.raw_outputs
    assert answer.trace.extra["hydra_heads"]["adapter"] == "user"  # 6 items >= min_user_items: the user's own head
    short = Example("q2", task.format_input("Two friends laugh through a road trip."), user(8, "comedy", 3))
    assert method.answer(short, short.profile).trace.extra["hydra_heads"]["adapter"] == "shared"  # 3 < 4 items
    assert method.reranker.losses and method.adapter.losses
