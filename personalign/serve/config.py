"""``personalign serve --config FILE``: every setting of the service, validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from personalign.config import MethodConfig, Settings, load_settings
from personalign.methods import method_options


class ServeConfig(Settings):
    """The service's settings; unknown keys are refused. The method's settings are the same ``MethodConfig``
    that ``personalign eval`` reads (``method_config:``), its own options the method's ``Options`` model."""

    renamed = {"k": "method_config.k"}

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: str = "personalign-data"        # the SQLite store lives here by default
    store_url: str | None = None              # SQLAlchemy URL; default sqlite:///<data_dir>/personalign.db
    base_llm: str = "llamacpp"                # any backend spec: llamacpp[:PATH.gguf], openai:MODEL, transformers:PATH
    base_llm_options: dict[str, Any] = Field(default_factory=dict)
    method: str | None = None                 # default: rpo when a reflection model is set, otherwise rag
    method_options: dict[str, Any] = Field(default_factory=dict)  # e.g. {reflection: runs/rpo/.../model.f16.gguf}
    retriever: str = "bm25"                   # or dense[:ENCODER]: embeddings built in the background
    derived_worker: bool = True               # run a derived-data worker thread in this process
    method_config: MethodConfig = Field(default_factory=MethodConfig)  # k (history items per prompt), ...
    context_messages: int = Field(6, ge=0)     # earlier messages of a conversation passed with its last user message
    served_model: str = "personalign"         # the model name /v1/models lists
    workers: int = Field(1, ge=1)             # service processes on one store (uvicorn workers)
    threads: int = Field(64, ge=1)             # requests handled at once (HTTP base models: set their concurrency too)
    max_request_bytes: int = Field(1_000_000, ge=1_000)
    max_history_items: int = Field(10_000, ge=1)
    max_item_chars: int = Field(20_000, ge=1)
    fallback_to_base: bool = True             # personalization failed: answer with the base answer (counted)
    vacuum_after_delete: bool = False         # after each delete, Store.vacuum(): PostgreSQL VACUUM FULL (docs/serve.md)

    def store(self) -> str:
        return self.store_url or f"sqlite:///{Path(self.data_dir).resolve() / 'personalign.db'}"

    def method_name(self) -> str:
        return self.method or ("rpo" if self.method_options.get("reflection") else "rag")


def load_serve_config(path: str | Path | None, cli: dict[str, Any] | None = None) -> ServeConfig:
    """A ServeConfig: command-line values (None: not given) over the YAML file over the defaults; the method's
    options checked by its model. Any problem is one ConfigError line naming the file and the key."""
    config = load_settings(ServeConfig, path, cli)
    method_options(config.method_name(), config.method_options, str(path or "serve config"), "method_options")
    return config
