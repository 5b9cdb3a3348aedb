"""RPM: reasoning-level personalization for black-box LLMs (Kim et al., 2025, arXiv 2505.21082).

Per user, once (``personalign.rpm.user_model``): the LLM extracts response-influential features of each
history item as JSON (schema-constrained where the backend can; malformed output is retried once with a
stricter prompt, then the item is skipped and counted), features are clustered into factors with
statistics, and the LLM writes a short reasoning path per item explaining how its features lead to the
user's known answer. (The path sees the item's own features, not the user's factors, so that an update
for new items never rewrites old paths and equals a full rebuild; the factors guide generation.) Per question: the query's features, retrieval of history items by feature
similarity (embeddings of feature phrases, not of raw text), and a prompt with the factor statistics and
the retrieved items' reasoning paths; the model reasons, then answers after "Answer:".

Options: ``max_items`` (history items modelled per user, newest first; the build cost grows with it),
``max_factors``, ``encoder`` (a dense retriever spec for feature embeddings; default the bundled
MiniLM), ``path_max_tokens``, ``encoder_memory`` (feature embeddings kept in memory). User models are
kept in memory and, with a cache folder, on disk (``rpm_users.sqlite``), keyed by the user's items, so a
grown history only processes the new items. The service instead stores the user model as versioned
derived data (``derive``), hands it in as ``example.derived["rpm_model"]`` and sets ``encoder_memory: 0``,
so that nothing derived from a deleted item stays in its processes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import Field

from personalign.config import Settings
from personalign.extras import require
from personalign.methods.base import Method
from personalign.retrievers.ranking import most_recent
from personalign.rpm.user_model import (FEATURE_SCHEMA, BuildCost, ItemModel, UserModel, build_factors, item_parts,
                                        parse_features)
from personalign.retrievers.ranking import LRU
from personalign.store import SqliteStore, item_key, profile_key
from personalign.types import Answer, GenParams, Request, Trace

FEATURE_PROMPT = (
    "Task: {description}\n{example}\n\nList 2 to 4 short features of this {what} that most influence the "
    "answer (topic, tone, sentiment, style), each in its own words. Reply only with a JSON object whose "
    "key \"features\" holds the list of phrases."
)
RETRY_SUFFIX = "\nYour last reply was not valid JSON. Reply with one JSON object and nothing else."
PATH_PROMPT = (
    "Task: {description}\n{example}\nFeatures: {features}\n\n"
    "In one or two sentences, explain how these features lead to this user's answer. Write only the explanation."
)
ANSWER_PROMPT = (
    "This user's factors, from their history:\n{factors}\n\nSimilar past cases, with the reasoning behind the "
    "user's answers:\n{cases}\n\nFeatures of the new case: {features}\n\n{input}"
)


class RPMOptions(Settings):
    """RPM's own options (``method_options`` of an eval or service config)."""

    max_items: int = Field(16, ge=1)          # newest history items the user model is built from
    max_factors: int = Field(4, ge=1)
    encoder: str | None = None                # sentence encoder for feature retrieval (None: the default)
    path_max_tokens: int = Field(64, ge=1)
    feature_max_tokens: int = Field(64, ge=1)
    encoder_memory: int = Field(100_000, ge=0)  # embeddings kept in memory (0: none, as in the service)


class RPM(Method):
    """Factors, reasoning paths and feature retrieval from the user's history, then guided generation."""

    cot = True
    derived_key = "rpm_model"

    Options = RPMOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        require("the rpm method (its feature embeddings)", "dense", "sentence_transformers")
        from personalign.retrievers.dense import DenseRetriever

        o = self.options
        self.max_items, self.max_factors = o.max_items, o.max_factors
        self.path_max_tokens, self.feature_max_tokens = o.path_max_tokens, o.feature_max_tokens
        self.encoder = DenseRetriever(o.encoder, cache_dir=self.cache_dir, memory_items=o.encoder_memory)
        self.models: LRU[UserModel] = LRU(256)        # by the user's item set
        self.latest: LRU[UserModel] = LRU(256)        # by user id: the base of an incremental update
        self.disk = SqliteStore(Path(self.cache_dir) / "rpm_users.sqlite", table="users") if self.cache_dir else None

    # ------------------------------------------------------------ prompts

    def _example_text(self, source: str, answer: str | None) -> str:
        lines = [f"Input: {source}"] if source else []
        if answer is not None:
            lines.append(f"{'The user wrote' if not source else 'The user answered'}: {answer}")
        return "\n".join(lines)

    def _feature_request(self, source: str, answer: str | None, retry: bool, stage: str) -> Request:
        what = "case" if source else "text"
        prompt = FEATURE_PROMPT.format(description=self.task.description, example=self._example_text(source, answer),
                                       what=what) + (RETRY_SUFFIX if retry else "")
        params = GenParams(max_tokens=self.feature_max_tokens, temperature=0.0, seed=self.config.seed,
                           json_schema=FEATURE_SCHEMA)
        return Request([{"role": "user", "content": prompt}], params, stage)

    def features(self, pairs: list[tuple[str, str | None]], trace: Trace, stage: str, cost: BuildCost):
        """Features of each ``(input, answer)`` (None where still malformed after one retry)."""
        found: list[list[str] | None] = [None] * len(pairs)
        todo = list(range(len(pairs)))
        for retry in (False, True):
            if not todo:
                break
            requests = [self._feature_request(*pairs[i], retry, stage) for i in todo]
            completions = yield requests
            cost.retried += len(todo) if retry else 0
            for i, request, completion in zip(todo, requests, completions):
                trace.record_call(request.messages, completion, stage)
                self._charge(cost, completion)
                found[i] = parse_features(completion.text)
            todo = [i for i in todo if found[i] is None]
        return found

    @staticmethod
    def _charge(cost: BuildCost, completion: Any) -> None:
        cost.calls += 1
        cost.prompt_tokens += completion.prompt_tokens
        cost.completion_tokens += completion.completion_tokens

    # ------------------------------------------------------------ the user model

    def user_model(self, profile: Sequence[dict[str, Any]], trace: Trace, previous: UserModel | None = None):
        """The user model of ``profile`` (``model = yield from self.user_model(...)``), built once: only items
        not in ``previous`` (or in the stored model of the same items) cost LLM calls."""
        chosen = most_recent(list(profile), self.max_items)
        key = profile_key(chosen)
        stored = self.models.get(key)
        if stored is None and self.disk is not None and (raw := self.disk.get_json(key)) is not None:
            stored = UserModel.from_json(raw["model"])
        if stored is not None:
            self.models.put(key, stored)
            return stored
        model = yield from self.build_user_model(chosen, trace, previous)
        self.models.put(key, model)
        if self.disk is not None:
            self.disk.put_json(key, {"model": model.to_json()})
        return model

    @property
    def derived_items(self) -> int:
        return self.max_items

    def derive(self, profile: Sequence[dict[str, Any]], previous: str | None, trace: Trace):
        """The user model as derived data (JSON), updated from ``previous`` (its items cost no LLM call)."""
        model = yield from self.build_user_model(most_recent(list(profile), self.max_items), trace,
                                                 UserModel.from_json(previous) if previous else None)
        return model.to_json()

    def build_user_model(self, chosen: Sequence[dict[str, Any]], trace: Trace, previous: UserModel | None):
        """The user model of the items ``chosen``, built anew except for the items ``previous`` already has."""
        start = time.perf_counter()
        model = UserModel(cost=BuildCost(**vars(previous.cost)) if previous else BuildCost())
        known = previous.items if previous else {}
        new = {item_key(item): item for item in chosen if item_key(item) not in known}
        model.items = {k: v for k, v in known.items() if k in {item_key(i) for i in chosen}}
        pairs = {k: item_parts(self.task, item, self.config.item_max_words) for k, item in new.items()}
        extracted = yield from self.features(list(pairs.values()), trace, "rpm_features", model.cost)
        for (k, (source, answer)), features in zip(pairs.items(), extracted):
            if features is None:
                model.cost.skipped += 1
                continue
            model.items[k] = ItemModel(str(new[k].get("id", k)), source, answer, features)
        model.factors = build_factors(self.task, model.items, self.encoder.embed, self.max_factors)
        pending = [k for k in sorted(model.items) if k in new]
        requests = [Request([{"role": "user", "content": PATH_PROMPT.format(
            description=self.task.description, example=self._example_text(model.items[k].source, model.items[k].answer),
            features="; ".join(model.items[k].features))}],
            GenParams(max_tokens=self.path_max_tokens, temperature=0.0, seed=self.config.seed), "rpm_paths")
            for k in pending]
        completions = (yield requests) if requests else []
        for k, request, completion in zip(pending, requests, completions):
            trace.record_call(request.messages, completion, "rpm_paths")
            self._charge(model.cost, completion)
            model.items[k].path = " ".join(completion.text.split())
        model.cost.seconds += time.perf_counter() - start
        return model

    # ------------------------------------------------------------ per question

    def feature_retrieve(self, model: UserModel, query_features: list[str], k: int) -> list[ItemModel]:
        """The ``k`` items whose features are most similar to the query's (mean of feature embeddings)."""
        items = [model.items[key] for key in sorted(model.items)]
        if not items or not query_features or k <= 0:
            return []
        def centroid(features: list[str]) -> np.ndarray:
            vectors = self.encoder.prepare(self.encoder.embed(features))
            mean = vectors.mean(axis=0)
            return mean / max(float(np.linalg.norm(mean)), 1e-12)
        query = centroid(query_features)
        scores = np.array([centroid(item.features) @ query for item in items])
        order = sorted(range(len(items)), key=lambda i: (-scores[i], i))
        return [items[i] for i in order[:k]]

    def plan(self, example, profile):
        trace = Trace()
        if self.derived_key in example.derived:  # built ahead (the service); empty before the first build
            raw = example.derived[self.derived_key]
            model = UserModel.from_json(raw) if raw else UserModel()
        else:
            model = yield from self.user_model(profile, trace, self.latest.get(example.user_id or ""))
            if example.user_id:
                self.latest.put(example.user_id, model)
        source = self.task.query_text(example.input)
        (query_features,) = yield from self.features([(source, None)], trace, "rpm_query", BuildCost())
        retrieved = self.feature_retrieve(model, query_features or [], self.config.k)
        trace.retrieved_ids.extend(item.item_id for item in retrieved)
        cases = "\n".join(f"- {self._example_text(i.source, i.answer)}\n  Reasoning: {i.path}" for i in retrieved)
        factors = [f.line() for f in model.factors]
        prompt = ANSWER_PROMPT.format(factors="\n".join(factors) or "- none yet",
                                      cases=cases or "- none", features="; ".join(query_features or []) or "unknown",
                                      input=example.input)
        raw = yield from self.ask(prompt, trace)
        trace.extra.update(rpm_factors=factors, rpm_query_features=query_features,
                           rpm_build_cost=vars(model.cost).copy())
        return Answer(raw, trace, self.output_filter)


PLUGIN = RPM
