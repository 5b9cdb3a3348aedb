"""Optional features and the pip extra that brings each.

``pip install personalign`` is the core: evaluation against an OpenAI-compatible endpoint, the references,
BM25 and the service. The heavy packages come with extras (``local``, ``dense``, ``train``, ``all``), and
are imported only where a feature uses them; a feature whose extra is missing is a one-line ConfigError
naming the extra, never a traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from personalign.errors import ConfigError

# the top-level module of each optional package -> the extra that installs it
EXTRA_OF = {
    "llama_cpp": "local",
    "sentence_transformers": "dense",
    "torch": "train",
    "transformers": "train",
    "trl": "train",
    "peft": "train",
    "datasets": "train",
    "accelerate": "train",
    "gguf": "train",
    "sentencepiece": "train",
    "matplotlib": "train",
}


def install_hint(extra: str) -> str:
    """``pip install 'personalign[EXTRA]'``, as the messages write it."""
    return f"`pip install 'personalign[{extra}]'`"


def missing_extra(feature: str, extra: str, module: str | None = None) -> ConfigError:
    """The one-line error for ``feature`` when its extra is not installed."""
    return ConfigError(f"{feature} needs {install_hint(extra)}" + (f" (no module '{module}')" if module else ""))


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # a missing parent package, or a module without a spec
        return False


def require(feature: str, extra: str, *modules: str) -> None:
    """Raise the one-line error for ``feature`` unless every module in ``modules`` is installed."""
    for module in modules:
        if not installed(module):
            raise missing_extra(feature, extra, module)


@contextmanager
def needs(feature: str, extra: str | None = None) -> Iterator[None]:
    """Turn a missing optional package imported in the block into the one-line error naming its extra.

    ``extra`` None: the extra of the missing package (``EXTRA_OF``). A missing module that no extra
    brings is a bug, and is raised as it is.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_OF:
            raise
        raise missing_extra(feature, extra or EXTRA_OF[top], top) from None


# in-process backends -> (their extra, the modules they import)
BACKEND_EXTRA = {"llamacpp": ("local", ("llama_cpp",)), "transformers": ("train", ("torch", "transformers"))}


def require_backend(spec: str, feature: str) -> None:
    """The one-line error for ``feature`` (e.g. "RPO's reflection model") unless the packages of the
    backend that ``spec`` names are installed; HTTP backends need none."""
    extra, modules = BACKEND_EXTRA.get(spec.partition(":")[0].strip(), (None, ()))
    if extra:
        require(f"{feature} ({spec.partition(':')[0]})", extra, *modules)
