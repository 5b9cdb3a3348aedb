"""Local Hugging Face causal LMs (a hub name, a model folder or a ``.gguf`` file) with batched generation."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from personalign.backends import check_number, cut_at_stop, default_gguf_path, model_file_id, shorten_messages
from personalign.backends.base import LLM
from personalign.errors import BackendError, ConfigError
from personalign.extras import require
from personalign.types import Completion, GenParams, Messages


def _load(arg: str, dtype: Any) -> tuple[Any, Any, str]:
    """Tokenizer, model and identity for a hub name, a local folder or a local ``.gguf`` file."""
    path = Path(arg).expanduser()
    if not path.exists() and (path.suffix == ".gguf" or arg.startswith((".", "/", "~"))):
        raise BackendError(f"model file or folder not found: {path}")
    if path.suffix == ".gguf":
        where, extra, ident = str(path.parent), {"gguf_file": path.name}, model_file_id(path)
    else:
        where, extra, ident = (str(path), {}, model_file_id(path)) if path.exists() else (arg, {}, arg)
    tokenizer, model = load_pretrained(where, dtype, **extra)
    return tokenizer, model, ident


def load_pretrained(where: str, dtype: Any, **extra: Any) -> tuple[Any, Any]:
    """``(tokenizer, model)`` from a hub name or local folder; local paths never touch the network."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = {"local_files_only": True} if Path(where).exists() else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **extra, **local)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **extra, **local)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BackendError(f"cannot load model {where}: {reason}") from None
    return tokenizer, model


class TransformersLLM(LLM):
    """A causal LM run by ``transformers``; ``model`` and ``tokenizer`` are public for training code."""

    def __init__(self, arg: str | None = None, device: str = "cpu", dtype: str = "float32", batch_size: int = 8):
        require("the transformers backend", "train", "torch", "transformers")
        import torch

        check_number("transformers", "batch_size", batch_size, 1, integer=True)
        if not isinstance(dtype, str) or not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ConfigError(f"unknown dtype '{dtype}'; use float32, bfloat16 or float16")
        self.tokenizer, self.model, ident = _load(arg or default_gguf_path(), getattr(torch, dtype))
        self.device, self.batch_size = device, max(1, batch_size)
        self.parallelism = self.batch_size
        self.model.to(device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_len = int(getattr(self.model.config, "max_position_embeddings", 0) or 4096)
        self.name = f"transformers:{ident}"
        self._lock = threading.Lock()

    def identity(self) -> dict:
        return {"name": self.name, "dtype": str(self.model.dtype), "max_len": self.max_len}

    def describe(self) -> dict:
        return {**super().describe(), "device": self.device, "dtype": str(self.model.dtype)}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _render(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _fit(self, messages: Messages, max_tokens: int) -> str:
        """The templated prompt, with the longest message shortened if the context is too small."""
        count = lambda ms: len(self.tokenizer(self._render(ms), add_special_tokens=False)["input_ids"])  # noqa: E731
        return self._render(shorten_messages(messages, count, self.max_len - max_tokens))

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        return self.chat_batch([messages], params)[0]

    def chat_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Completion]:
        """Batched generation (left padding), ``batch_size`` prompts at a time, similar lengths together."""
        params = params or GenParams()
        max_tokens = max(1, min(params.max_tokens, self.max_len // 2))
        prompts = [self._fit(messages, max_tokens) for messages in batch]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[Completion | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for i, completion in zip(chunk, self._run([prompts[i] for i in chunk], params, max_tokens)):
                results[i] = completion
        return results  # type: ignore[return-value]

    def _run(self, prompts: list[str], params: GenParams, max_tokens: int) -> list[Completion]:
        import torch

        tok = self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sampling: dict[str, Any] = {"do_sample": False}
        if params.temperature > 0:
            sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
        if params.stop:
            sampling.update(stop_strings=list(params.stop), tokenizer=tok)
        with self._lock, torch.no_grad():
            if params.temperature > 0:
                torch.manual_seed(params.seed)
            out = self.model.generate(**enc, max_new_tokens=max_tokens, pad_token_id=tok.pad_token_id, **sampling)
        new = out[:, enc["input_ids"].shape[1]:]
        ends = {t for t in (tok.eos_token_id, tok.pad_token_id) if t is not None}
        results = []
        for row, mask in zip(new.tolist(), enc["attention_mask"]):
            n = next((k for k, t in enumerate(row) if t in ends), len(row))  # generated before the end token
            text = cut_at_stop(tok.decode(row[:n], skip_special_tokens=True), params.stop)
            results.append(Completion(text, int(mask.sum()), n))
        return results


PLUGIN = TransformersLLM
