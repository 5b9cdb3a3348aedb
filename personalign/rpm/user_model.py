"""RPM's user model: response-influential features per history item, user-level factors with statistics,
and a reasoning path per item (Kim et al., 2025, arXiv 2505.21082).

- Features are short phrases an LLM extracts as JSON; ``parse_features`` validates them (pydantic).
- Factors group a user's features by clustering their embeddings. Each factor has its frequency (the
  share of the user's items with a feature in it) and the distribution of the user's answers within it.
- Items are keyed by a hash of their content, so an update processes only new items; factors are
  recomputed from all items (no LLM call), so an incremental update equals a full rebuild.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from personalign.tasks.spec import TaskSpec

MAX_FEATURE_CHARS = 80
MAX_JSON_CHARS = 4000  # longer outputs are not parsed (bounded work whatever the model writes)


class Features(BaseModel):
    """The JSON an extraction request must return."""

    features: list[str] = Field(min_length=1, max_length=6)

    @field_validator("features")
    @classmethod
    def _short_phrases(cls, values: list[str]) -> list[str]:
        cleaned = [" ".join(v.split())[:MAX_FEATURE_CHARS] for v in values]
        if not all(cleaned):
            raise ValueError("a feature is empty")
        if not all(re.search(r"[^\W_]{2}", v) and not re.fullmatch(r"<[^>]*>", v) for v in cleaned):
            raise ValueError("a feature has no word in it, or is the prompt's placeholder")  # "...", "<first feature>"
        return cleaned


FEATURE_SCHEMA = json.dumps(Features.model_json_schema(), sort_keys=True)


def parse_features(text: str) -> list[str] | None:
    """The validated features in a completion (its first JSON object), or None when it has none."""
    match = re.search(r"\{.*\}", text[:MAX_JSON_CHARS], re.DOTALL)
    if not match:
        return None
    try:
        return Features.model_validate(json.loads(match.group(0))).features
    except (ValueError, RecursionError, ValidationError):
        return None


def item_parts(task: TaskSpec, item: dict[str, Any], max_words: int | None) -> tuple[str, str]:
    """``(input, the user's answer)`` of a history item; generation items without an input give ``""``."""
    words = lambda text: " ".join(str(text).split()[:max_words] if max_words else str(text).split())  # noqa: E731
    source = words(item.get(task.input_field, "")) if task.input_field else ""
    return source, words(task.item_output(item) or "")


@dataclass
class ItemModel:
    """One history item as RPM sees it."""

    item_id: str
    source: str
    answer: str
    features: list[str]
    path: str = ""


@dataclass
class Factor:
    """A user-level factor: a cluster of the user's features, with statistics."""

    name: str
    features: list[str]
    item_keys: list[str]
    frequency: float
    answers: str  # the user's answers within the factor, summarised

    def line(self) -> str:
        return f"- {self.name} (in {self.frequency:.0%} of the history; answers: {self.answers})"


@dataclass
class BuildCost:
    """What building a user model cost: LLM calls and tokens, seconds, and items skipped as malformed."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    skipped: int = 0
    retried: int = 0


@dataclass
class UserModel:
    items: dict[str, ItemModel] = field(default_factory=dict)
    factors: list[Factor] = field(default_factory=list)
    cost: BuildCost = field(default_factory=BuildCost)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "UserModel":
        raw = json.loads(text)
        return cls(items={k: ItemModel(**v) for k, v in raw["items"].items()},
                   factors=[Factor(**f) for f in raw["factors"]], cost=BuildCost(**raw["cost"]))

    def content(self) -> dict[str, Any]:
        """The model without its cost (what a rebuild must reproduce)."""
        return {"items": {k: asdict(v) for k, v in sorted(self.items.items())},
                "factors": [asdict(f) for f in self.factors]}


def answer_summary(task: TaskSpec, answers: Sequence[str]) -> str:
    """The distribution of answers: label shares for labels and ratings, length and lead words for text."""
    if not answers:
        return "none"
    if task.kind in ("classification", "rating"):
        counts = Counter(a.strip() for a in answers)
        return ", ".join(f"{label} {n / len(answers):.0%}" for label, n in counts.most_common(3))
    lengths = [len(a.split()) for a in answers]
    return f"about {round(float(np.mean(lengths)))} words"


def build_factors(task: TaskSpec, items: dict[str, ItemModel], embed: Callable[[list[str]], np.ndarray],
                  max_factors: int) -> list[Factor]:
    """Cluster the user's distinct features into at most ``max_factors`` factors (deterministic)."""
    from sklearn.cluster import AgglomerativeClustering

    owners: dict[str, list[str]] = {}
    for key in sorted(items):
        for feature in items[key].features:
            owners.setdefault(feature.lower(), []).append(key)
    names = sorted(owners)
    if not names:
        return []
    vectors = np.asarray(embed(names), dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    count = min(max_factors, len(names))
    labels = (AgglomerativeClustering(n_clusters=count, metric="cosine", linkage="average").fit_predict(vectors)
              if count > 1 else np.zeros(len(names), dtype=int))
    factors = []
    for cluster in range(count):
        members = [i for i in range(len(names)) if labels[i] == cluster]
        centre = vectors[members].mean(axis=0)
        central = members[int(np.argmax(vectors[members] @ centre))]
        keys = sorted({k for i in members for k in owners[names[i]]})
        factors.append(Factor(names[central], [names[i] for i in members], keys, len(keys) / len(items),
                              answer_summary(task, [items[k].answer for k in keys])))
    return sorted(factors, key=lambda f: (-f.frequency, f.name))
