"""HYDRA: retrieve, rerank, adapt, for black-box LLMs (Zhuang et al., NeurIPS 2024).

- **Reranker.** The retriever proposes ``candidates`` history items; a factorized scorer
  (``personalign.hydra.scorer``) reorders them and the top ``k`` go into a RAG prompt.
- **Adapter.** The base LLM answers that prompt ``samples`` times (the first greedy, the others
  sampled with fixed seeds); a second factorized scorer picks the best candidate.
- Both scorers share a backbone trained on all train users (``fit``: reranker utilities are the task
  metric of an item's answer against the gold; adapter utilities are the metric of each sampled
  candidate against the gold, on ``adapter_train_questions`` train questions).
- **Unseen users** (all users of the user split) get heads fitted on their own profile only: each of
  their ``head_queries`` newest items is a pseudo-question whose answer is the item's own output,
  never the gold. With fewer than ``min_user_items`` items the shared heads are used.

The backbone is a small MLP over frozen embeddings of the bundled MiniLM (``encoder``). Training the two
scorers takes seconds; what takes minutes on a CPU is the LLM sampling ``samples`` candidates for each of
the ``adapter_train_questions`` and embedding the train questions, and both show progress. The trained
scorers are saved under the cache folder, and ``eval`` prints the path; ``scorer=PATH`` loads one
(``personalign personalize --method hydra --method-options scorer=PATH``).
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import Field
from tqdm import tqdm

from personalign.config import Settings
from personalign.engine import Engine
from personalign.engine.progress import SHOW_AFTER_SECONDS, RequestProgress
from personalign.errors import ConfigError
from personalign.extras import require
from personalign.hydra.scorer import FactorizedScorer, Group, ScorerConfig, pair_features
from personalign.methods.base import Method
from personalign.retrievers.ranking import most_recent
from personalign.retrievers.ranking import LRU
from personalign.store import profile_key, stable_hash
from personalign.tasks.filters import apply_filter
from personalign.tasks.metrics import example_score
from personalign.types import Answer, Example, GenParams, ProfileItem, Request, Trace

USER_CENTROID_ITEMS = 32


def _say(message: str) -> None:
    """A line about training on stderr, beside the progress bars (stdout keeps the results)."""
    print(message, file=sys.stderr, flush=True)


class HYDRAOptions(Settings):
    """HYDRA's own options (``method_options`` of an eval or service config)."""

    candidates: int = Field(12, ge=1)         # retrieved items the reranker orders
    samples: int = Field(4, ge=1)             # base answers sampled per question
    sample_temperature: float = Field(0.8, ge=0)
    min_user_items: int = Field(6, ge=1)
    head_queries: int = Field(16, ge=1)
    train_questions: int = Field(128, ge=1)
    adapter_train_questions: int = Field(32, ge=1)
    encoder: str | None = None
    scorer: str | None = None                 # a saved scorer file (skips fitting)
    hidden: int = Field(64, ge=1)
    epochs: int = Field(40, ge=1)
    head_l2: float = Field(1.0, ge=0)


class HYDRA(Method):
    """Reranked retrieval, several base answers, and a per-user adapter that picks one."""

    needs_train = True

    Options = HYDRAOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        require("the hydra method (its embeddings and scorers)", "dense", "sentence_transformers", "torch")
        from personalign.retrievers.dense import DenseRetriever

        o = self.options
        self.candidates, self.samples, self.sample_temperature = o.candidates, o.samples, o.sample_temperature
        self.min_user_items, self.head_queries = o.min_user_items, o.head_queries
        self.train_questions, self.adapter_train_questions = o.train_questions, o.adapter_train_questions
        self.scorer_config = ScorerConfig(hidden=o.hidden, epochs=o.epochs, head_l2=o.head_l2, seed=self.config.seed)
        self.encoder = DenseRetriever(o.encoder, cache_dir=self.cache_dir)
        self.reranker: FactorizedScorer | None = None
        self.adapter: FactorizedScorer | None = None
        self.heads: LRU[dict[str, Any]] = LRU(512)
        self.scorer_path: Path | None = None
        if o.scorer:
            self.load(Path(o.scorer).expanduser())

    # ------------------------------------------------------------ embeddings and utilities

    def _vector(self, text: str) -> np.ndarray:
        return self.encoder.embed([text or " "])[0]

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.embed([t or " " for t in texts])

    def _output(self, item: ProfileItem) -> str:
        return self.task.item_output(item) or ""

    def _utility(self, prediction: str, gold: str) -> float:
        return example_score(self.task, prediction, gold)

    def _parsed(self, raw: str) -> str:
        return apply_filter(self.task, self.output_filter, raw, {}).prediction

    def _centroid(self, items: Sequence[ProfileItem]) -> np.ndarray:
        recent = most_recent(list(items), USER_CENTROID_ITEMS)
        if not recent:
            return np.zeros(self.encoder.embed(["x"]).shape[1], dtype=np.float32)
        return self._vectors([self._output(i) for i in recent]).mean(axis=0)

    def _pool(self, query: str, profile: Sequence[ProfileItem]) -> list[ProfileItem]:
        return self.retriever.top_k(query, profile, self.task, self.candidates) if self.retriever else list(profile)

    def _item_features(self, query: str, items: Sequence[ProfileItem]) -> np.ndarray:
        return pair_features(self._vector(query), self._vectors([self.task.item_document(i) for i in items]))

    def _rerank_group(self, query: str, items: Sequence[ProfileItem], gold: str) -> Group:
        utilities = np.array([self._utility(self._output(i), gold) for i in items], dtype=np.float32)
        return self._item_features(query, items), utilities

    def _adapter_group(self, query: str, texts: Sequence[str], user: np.ndarray, gold: str) -> Group:
        x = pair_features(self._vector(query), self._vectors(texts), user)
        return x, np.array([self._utility(t, gold) for t in texts], dtype=np.float32)

    def _answer_space(self) -> list[str]:
        """Contrast answers for a user's pseudo-questions: every label, or every whole rating; none for text."""
        if self.task.kind == "classification":
            return list(self.task.labels)
        if self.task.kind == "rating":
            low, high = self.task.rating_range
            return [str(v) for v in range(int(low), int(high) + 1)]
        return []

    def _query(self, task_input: str) -> str:
        return self.task.query_text(task_input)

    def _item_query(self, item: ProfileItem) -> str:
        """A profile item as a pseudo-question: its input where the task has one, else its document."""
        field = self.task.input_field
        return " ".join(str(item.get(field, "")).split()) if field and item.get(field) else self.task.item_document(item)

    # ------------------------------------------------------------ training on the train users

    def _sample_requests(self, prompt: str, stage: str) -> list[Request]:
        messages = [{"role": "user", "content": prompt}]
        base = self.params()
        return [Request(messages, GenParams(base.max_tokens, 0.0 if j == 0 else self.sample_temperature, base.top_p,
                                            self.config.seed + j), stage) for j in range(self.samples)]

    def _candidate_plan(self, example: Example, profile: Sequence[ProfileItem]):
        """Reranked prompt, then ``samples`` base answers (an Answer whose trace holds the candidates)."""
        trace = Trace()
        items, scores, head_kind = self.rerank(example, profile, trace)
        requests = self._sample_requests(self.with_items(example, items), "hydra_candidates")
        completions = yield requests
        for request, completion in zip(requests, completions):
            trace.record_call(request.messages, completion, request.stage)
        trace.extra["hydra_reranked"] = [f"{i.get('id', '')} ({s:+.3f})" for i, s in zip(items, scores)]
        trace.extra["hydra_heads"] = {"reranker": head_kind}
        return Answer(completions[0].text, trace, self.output_filter)

    def fit(self, examples: Sequence[Example], golds: dict[str, str]) -> None:
        """Train both shared scorers on the train users (skipped when a saved scorer was loaded)."""
        if self.reranker is not None and self.adapter is not None:
            return
        rng = np.random.default_rng(self.config.seed)
        labelled = [e for e in examples if e.id in golds and e.profile]
        chosen = [labelled[i] for i in sorted(rng.permutation(len(labelled))[: self.train_questions])]
        start, name = time.perf_counter(), f"{self.task.name} hydra"
        _say(f"{name}: training the reranker and the adapter on {len(chosen)} train questions "
             f"(pass scorer=PATH to reuse a trained pair)")
        groups = [self._rerank_group(self._query(e.input), self._pool(self._query(e.input), e.profile), golds[e.id])
                  for e in tqdm(chosen, desc=f"{name} reranker utilities", unit="question", file=sys.stderr,
                                delay=SHOW_AFTER_SECONDS)]
        dim = groups[0][0].shape[1] if groups else 2 * self._vector("x").shape[0]
        self.reranker = FactorizedScorer(dim, self.scorer_config)
        self.reranker.fit_shared(groups, desc=f"{name} reranker")
        adapter_examples = chosen[: self.adapter_train_questions]
        with RequestProgress(len(adapter_examples), f"{name} adapter candidates ({self.samples} per question)") as progress:
            answers = [a for _, a, _ in Engine(self.backends()).run((self._candidate_plan(e, e.profile)
                                                                     for e in adapter_examples), progress)]
        adapter_groups = [self._adapter_group(self._query(e.input), [self._parsed(t) for t in a.trace.raw_outputs],
                                              self._centroid(e.profile), golds[e.id])
                          for e, a in zip(adapter_examples, answers)]
        dim = adapter_groups[0][0].shape[1] if adapter_groups else 3 * self._vector("x").shape[0]
        self.adapter = FactorizedScorer(dim, self.scorer_config)
        self.adapter.fit_shared(adapter_groups, desc=f"{name} adapter")
        self.fit_seconds = time.perf_counter() - start
        self.save(len(chosen), len(adapter_examples))
        where = f"saved to {self.scorer_path}" if self.scorer_path else "not saved (no cache folder)"
        _say(f"{name}: scorers trained in {self.fit_seconds:.0f} s, {where}"
             + (f"; reuse: personalign personalize --method hydra --method-options scorer={self.scorer_path}"
                if self.scorer_path else ""))

    def save(self, questions: int, adapter_questions: int) -> None:
        if self.cache_dir is None or self.reranker is None or self.adapter is None:
            return
        blob = {"reranker": self.reranker.to_bytes(), "adapter": self.adapter.to_bytes(), "task": self.task.name,
                "questions": questions, "adapter_questions": adapter_questions}
        import torch

        buffer = io.BytesIO()
        torch.save(blob, buffer)
        raw = buffer.getvalue()
        path = self.cache_dir / "hydra" / f"{self.task.name}-{stable_hash([raw.hex()])[:16]}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(raw)
        partial.replace(path)
        self.scorer_path = path

    def load(self, path: Path) -> None:
        import torch

        try:
            blob = torch.load(path, weights_only=True)
            self.reranker = FactorizedScorer.from_bytes(blob["reranker"])
            self.adapter = FactorizedScorer.from_bytes(blob["adapter"])
        except FileNotFoundError:
            raise ConfigError(f"hydra scorer file not found: {path}") from None
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file becomes one line
            raise ConfigError(f"{path}: not a HYDRA scorer file ({type(exc).__name__}); train one with "
                              "`personalign eval --methods hydra`, which saves it under the cache folder") from None
        if blob.get("task") != self.task.name:
            raise ConfigError(f"{path}: a HYDRA scorer for {blob.get('task')}, not {self.task.name}")
        self.scorer_path = path

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "encoder": self.encoder.model_id}

    # ------------------------------------------------------------ per user

    def user_heads(self, profile: Sequence[ProfileItem]) -> dict[str, Any]:
        """The user's reranker and adapter heads, fitted on their own items (cached by the item set)."""
        key = profile_key(profile)
        found = self.heads.get(key)
        if found is not None:
            return found
        start = time.perf_counter()
        heads: dict[str, Any] = {"reranker": None, "adapter": None}
        if len(profile) >= self.min_user_items and self.reranker is not None and self.adapter is not None:
            rerank_groups, adapter_groups = [], []
            for item in most_recent(list(profile), self.head_queries):
                others = [i for i in profile if i is not item]
                query, answer = self._item_query(item), self._output(item)
                pool = self._pool(query, others)
                rerank_groups.append(self._rerank_group(query, pool, answer))
                texts = list(dict.fromkeys([answer, *(self._output(i) for i in pool), *self._answer_space()]))
                adapter_groups.append(self._adapter_group(query, texts, self._centroid(others), answer))
            heads = {"reranker": self.reranker.fit_head(rerank_groups), "adapter": self.adapter.fit_head(adapter_groups)}
        heads["seconds"] = time.perf_counter() - start
        heads["bytes"] = sum(h.nbytes for h in (heads["reranker"], heads["adapter"]) if h is not None)
        self.heads.put(key, heads)
        return heads

    def rerank(self, example: Example, profile: Sequence[ProfileItem], trace: Trace):
        """The top-k items after reranking the retriever's candidates, their scores, and the head used."""
        if self.reranker is None:
            raise ConfigError("hydra must be fitted on the train split first (or given scorer=PATH)")
        query = self._query(example.input)
        pool = self._pool(query, profile)
        if not pool:
            return [], [], "none"
        head = self.user_heads(profile)["reranker"]
        scores = self.reranker.score(self._item_features(query, pool), head)
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[: self.config.k]
        trace.retrieved_ids.extend(str(pool[i].get("id", "")) for i in order)
        return [pool[i] for i in order], [float(scores[i]) for i in order], "user" if head is not None else "shared"

    def plan(self, example, profile):
        if self.adapter is None:
            raise ConfigError("hydra must be fitted on the train split first (or given scorer=PATH)")
        candidates = yield from self._candidate_plan(example, profile)
        trace = candidates.trace
        heads = self.user_heads(profile)
        parsed = [self._parsed(t) for t in trace.raw_outputs]
        features = pair_features(self._vector(self._query(example.input)), self._vectors(parsed), self._centroid(profile))
        scores = self.adapter.score(features, heads["adapter"])
        best = min(range(len(parsed)), key=lambda i: (-scores[i], i))
        trace.extra["hydra_heads"]["adapter"] = "user" if heads["adapter"] is not None else "shared"
        trace.extra["hydra_candidates"] = [f"{s:+.3f} {'*' if i == best else ' '} {' '.join(p.split())[:100]}"
                                           for i, (p, s) in enumerate(zip(parsed, scores))]
        trace.extra["hydra_user"] = {"bytes": heads["bytes"], "fit_seconds": round(heads["seconds"], 4),
                                     "scorer": str(self.scorer_path or "")}
        return Answer(trace.raw_outputs[best], trace, self.output_filter)


PLUGIN = HYDRA
