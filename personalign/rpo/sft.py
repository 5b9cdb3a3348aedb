"""RPO stage 1: supervised fine-tuning of the reflection model on teacher trajectories.

A trajectory is ``{"messages": <reflection prompt, no gold>, "target": "<think>…</think><personalized>…</personalized>"}``;
the generic SFT stage (:class:`personalign.train.sft.SFTTrainer`) trains on the accepted ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personalign.errors import ConfigError
from personalign.rpo.config import RPOConfig
from personalign.train.sft import SFTTrainer


def sft_examples(rows: list[dict[str, Any]], config: RPOConfig) -> list[dict[str, Any]]:
    """The accepted trajectories, the first ``sft.max_examples`` of them when set."""
    accepted = [r for r in rows if r["accepted"]]
    accepted = accepted[: config.sft.max_examples] if config.sft.max_examples else accepted
    if not accepted:
        raise ConfigError("no accepted trajectories to train on")
    return accepted


def train_sft(config: RPOConfig, trajectories: list[dict], out_dir: Path, resume: bool = True) -> dict:
    """Fine-tune ``config.sft.model`` on ``trajectories`` (see :class:`personalign.train.sft.SFTTrainer`)."""
    return SFTTrainer(config.sft, trajectories, out_dir).train(resume)
