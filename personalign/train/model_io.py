"""Load and save the trainable reflection model (the bundled SmolLM2 GGUF, any ``.gguf`` file or an HF folder).

A GGUF file is dequantized once by ``transformers`` (slow: the ``gguf`` package parses in pure Python)
and saved as a plain HF folder under ``$PERSONALIGN_MODEL_CACHE`` (default ``~/.cache/personalign/models``);
later loads read that folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from personalign.backends import default_gguf_path, model_cache_dir, model_file_id
from personalign.errors import ConfigError

_SOURCE = "personalign_source.json"  # marks a finished cache folder and names the GGUF it came from


def _clean_for_training(model: Any) -> Any:
    """Drop the GGUF quantizer marks so that Trainer / optimizers treat the model as plain weights."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def _prepare_tokenizer(tokenizer: Any) -> Any:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _load_hf(where: str, dtype: torch.dtype, **extra: Any) -> tuple[Any, Any]:
    from personalign.backends.transformers import load_pretrained

    tokenizer, model = load_pretrained(where, dtype, **extra)
    return _clean_for_training(model), _prepare_tokenizer(tokenizer)


def dequantized_copy(gguf: str | Path) -> Path:
    """The HF folder holding ``gguf``'s dequantized weights, created on first use (temp dir, then rename)."""
    gguf = Path(gguf).expanduser().resolve()
    target = model_cache_dir() / f"{gguf.stem}-hf"
    ident = model_file_id(gguf)
    marker = target / _SOURCE
    if marker.is_file() and json.loads(marker.read_text()).get("source") == ident:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _load_hf(str(gguf.parent), torch.float32, gguf_file=gguf.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _SOURCE).write_text(json.dumps({"source": ident, "path": str(gguf)}))
        if target.exists():  # stale copy (another GGUF of the same name) or a concurrent writer
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / _SOURCE).is_file():
            raise
    return target


def resolve_model(spec: str | Path = "bundled") -> str:
    """An HF folder or hub name for ``spec``: "bundled", a ``.gguf`` path (dequantized once), or a folder/name."""
    spec = str(spec)
    if spec == "bundled":
        return str(dequantized_copy(default_gguf_path()))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"model file not found: {path}")
        return str(dequantized_copy(path))
    if not path.exists() and spec.startswith((".", "/", "~")):
        raise ConfigError(f"model folder not found: {path}")
    return str(path) if path.exists() else spec


def load_trainable(spec: str | Path = "bundled", dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """``(model, tokenizer)`` ready for training; the tokenizer pads on the left with a pad token set."""
    return _load_hf(resolve_model(spec), dtype)


def save_model(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Save a plain HF folder; a LoRA model is merged first (in place: save at the end of training)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
