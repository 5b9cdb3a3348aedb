"""In-process GGUF models through llama-cpp-python (default: the bundled SmolLM2-135M-Instruct)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from personalign.backends import check_number, content_sha256, default_gguf_path, model_cache_dir, model_file_id, shorten_messages
from personalign.backends.base import LLM
from personalign.errors import BackendError, ConfigError
from personalign.extras import installed, missing_extra
from personalign.types import Completion, GenParams, Messages

TEMPLATE_OVERHEAD = 48  # tokens the chat template may add (default system prompt, generation prompt)
PER_MESSAGE_OVERHEAD = 8  # role markers around each message


@contextlib.contextmanager
def quiet_stderr(enabled: bool = True) -> Iterator[None]:
    """Silence C-level writes to stderr (llama.cpp's load logs) while the block runs."""
    if not enabled:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "f16": "LLAMA_FTYPE_MOSTLY_F16", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def requantized_path(path: Path, quant: str) -> Path:
    """Where the ``quant`` copy of a GGUF lives: named by the source's content, so two exports with the
    same file name (every RPO export is ``model.f16.gguf``) never collide, and a retrained model is
    converted again."""
    if quant not in QUANT_TYPES:
        raise ConfigError(f"unknown quant '{quant}'; choose from: {', '.join(QUANT_TYPES)}")
    return model_cache_dir() / f"{path.stem}-{content_sha256(path)[:16]}.{quant}.gguf"


def requantized(path: Path, quant: str) -> Path:
    """A copy of a GGUF model converted to ``quant`` (made once, then reused from the cache).

    On x86 CPUs llama.cpp has fast matrix kernels for Q8_0/F16/Q4_0 but not for Q4_1, so the
    bundled Q4_1 SmolLM2 processes prompts about 1.6x faster as Q8_0 (which holds Q4_1 values
    almost exactly).
    """
    import ctypes

    import llama_cpp

    target = requantized_path(path, quant)
    folder = target.parent
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.nthread = getattr(llama_cpp, QUANT_TYPES[quant]), True, os.cpu_count()
    partial = target.with_suffix(f".{os.getpid()}.partial")  # two processes converting at once do not collide
    with quiet_stderr():
        status = llama_cpp.llama_model_quantize(str(path).encode(), str(partial).encode(), ctypes.byref(params))
    if status != 0:
        partial.unlink(missing_ok=True)
        raise BackendError(f"cannot convert {path} to {quant} (llama.cpp status {status})")
    partial.replace(target)
    return target


class LlamaCppLLM(LLM):
    """A GGUF chat model run by llama.cpp; the chat template comes from the GGUF metadata."""

    def __init__(self, arg: str | None = None, n_ctx: int = 8192, n_threads: int | None = None,
                 n_batch: int = 512, quant: str | None = None, verbose: bool = False):
        for option, value, low in (("n_ctx", n_ctx, 64), ("n_batch", n_batch, 1)) + ((("n_threads", n_threads, 1),) if n_threads is not None else ()):
            check_number("llamacpp", option, value, low, integer=True)
        if not installed("llama_cpp"):
            feature = "the default LLM (the bundled SmolLM2 under llama.cpp)" if arg is None else "the llamacpp backend"
            other = ("; or use an OpenAI-compatible endpoint: --llm openai:MODEL (serve: base_llm: openai:MODEL) "
                     "with its base URL in PERSONALIGN_LLM_BASE_URL") if arg is None else ""
            raise ConfigError(f"{missing_extra(feature, 'local')}{other}")
        from llama_cpp import Llama

        path = Path(arg or default_gguf_path()).expanduser()
        if not path.is_file():
            raise BackendError(f"GGUF model file not found: {path}")
        if quant:
            path = requantized(path, quant)
        try:
            with quiet_stderr(not verbose):
                self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(),
                                 n_batch=n_batch, verbose=verbose)
        except (ValueError, RuntimeError, OSError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise BackendError(f"cannot load GGUF model {path}: {reason}") from None
        self.path, self.n_ctx, self.verbose = path, self.llm.n_ctx(), verbose
        self.name = f"llamacpp:{model_file_id(path)}"
        self._lock = threading.Lock()
        self.openai_fields = frozenset({"response_format"})  # JSON and JSON-schema answers: a llama.cpp grammar

    def close(self) -> None:
        """Free the model now, while llama_cpp's module is whole (at interpreter exit ``Llama.__del__`` finds it
        torn down and prints a traceback)."""
        self.llm.close()

    def identity(self) -> dict:
        return {"name": self.name, "n_ctx": self.n_ctx}

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "n_ctx": self.n_ctx}

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for this model's own tokenizer (no BOS)."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0

    def _prompt_tokens(self, messages: Messages) -> int:
        """Upper-bound estimate of the templated prompt's length."""
        content = sum(self.count_tokens(m.get("content") or "") for m in messages)
        return content + PER_MESSAGE_OVERHEAD * len(messages) + TEMPLATE_OVERHEAD

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        *_, completion = self._run(messages, params, stream=False)
        return completion

    def stream(self, messages: Messages, params: GenParams | None = None) -> Iterator[str | Completion]:
        """Tokens as llama.cpp generates them (``create_chat_completion(stream=True)``), then the Completion."""
        return self._run(messages, params or GenParams(), stream=True)

    def _options(self, params: GenParams) -> dict:
        """create_chat_completion's arguments for ``params``: sampling, stop and a JSON grammar if asked."""
        response_format = ({"type": "json_object", "schema": json.loads(params.json_schema)}  # a grammar
                           if params.json_schema else None)
        asked = json.loads(params.openai or "{}").get("response_format")
        if asked and asked.get("type") in ("json_object", "json_schema"):  # the client's: a JSON (schema) grammar
            schema = (asked.get("json_schema") or {}).get("schema")
            response_format = {"type": "json_object", **({"schema": schema} if schema else {})}
        return dict(temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                    stop=list(params.stop) or None, response_format=response_format)

    def _run(self, messages: Messages, params: GenParams, stream: bool) -> Iterator[str | Completion]:
        """Generate (streamed or not), shortening the prompt when it does not fit; yields pieces, then the Completion."""
        max_tokens = max(1, min(params.max_tokens, self.n_ctx // 2))
        messages = [{**m, "content": text_content(m.get("content"))} for m in messages]
        margin = 0
        for _ in range(4):
            budget = self.n_ctx - max_tokens - margin
            fitted = shorten_messages(messages, self._prompt_tokens, budget)
            with self._lock:  # held while a stream is read: one generation at a time
                try:
                    # Evaluate every prompt from an empty KV cache: reusing a cached prefix evaluates the
                    # rest in other batch shapes, which moves logits enough to flip greedy tokens on some
                    # CPUs, so answers would depend on which request came before.
                    self.llm.reset()
                    reply = self.llm.create_chat_completion(messages=fitted, max_tokens=max_tokens, stream=stream,
                                                            **self._options(params))
                    first = next(reply) if stream else None  # a prompt too long fails here
                except ValueError as exc:  # the estimate was too low: shorten more and retry
                    if "context window" not in str(exc) and "exceed" not in str(exc):
                        raise BackendError(f"llama.cpp failed on {self.path.name}: {exc}") from None
                    margin = 2 * margin + 256
                    continue
                if not stream:
                    usage, choice = reply.get("usage") or {}, reply["choices"][0]
                    yield Completion(choice["message"].get("content") or "", int(usage.get("prompt_tokens", 0)),
                                     int(usage.get("completion_tokens", 0)), finish_reason=choice.get("finish_reason") or "stop")
                    return
                text, finish, prompt_tokens = "", "stop", self.llm.n_tokens  # the prompt, evaluated for the first token
                for chunk in itertools.chain([first], reply):
                    choice = chunk["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    piece = choice.get("delta", {}).get("content")
                    if piece:
                        text += piece
                        yield piece
                completion_tokens = self.count_tokens(text)
                yield Completion(text, prompt_tokens, completion_tokens, finish_reason=finish)
                return
        raise BackendError(f"prompt does not fit the {self.n_ctx}-token context of {self.path.name}")


def text_content(content: object) -> str:
    """A message's content as the chat template takes it: a string (text parts joined; the service refuses others)."""
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


PLUGIN = LlamaCppLLM
