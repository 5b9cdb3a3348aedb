"""Every RPO hyperparameter, in one typed tree loadable from YAML (defaults follow the paper).

``method_config`` is the ``rpo`` method's own :class:`~personalign.config.MethodConfig`: trajectory
generation and RL render the user's history items with it, the trained model's manifest records it, and the
``rpo`` method refuses to evaluate that model with other prompt settings, so training and evaluation
prompts cannot drift apart. ``k`` (history items in a prompt) is named ``k`` everywhere: the SFT prompt's
``trajectories.k``, RL's curriculum ``rl.k_from`` -> ``rl.k_to``, the evaluation's ``method_config.k``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from personalign.config import MethodConfig, Settings, load_settings
from personalign.rpo.template_teacher import TEMPLATE_STYLES, TEXT_TARGETS
from personalign.train.rl import RLConfig
from personalign.train.sft import SFTConfig


class TrajectoryConfig(Settings):
    """The trajectory stage: base answers, teacher rewrites, filters (the SFT data and the RL prompts)."""

    renamed = {"item_max_words": "method_config.item_max_words"}

    base_llm: str = "llamacpp"             # the black-box base model that writes A_base
    base_llm_options: dict[str, Any] = {}
    teacher_llm: str = "llamacpp"          # any backend; an API model when one is given; "template": no LLM teacher
    teacher_llm_options: dict[str, Any] = {}
    teacher_samples: int = Field(4, ge=0)  # teacher tries per example before giving up
    llm_teacher_examples: int | None = Field(None, ge=0)  # ask the LLM teacher for the first N examples only (None: all)
    teacher_temperature: float = Field(0.7, ge=0)
    teacher_max_tokens: int = Field(160, ge=1)
    retriever: str = "bm25"
    k: int = Field(1, ge=1)                # history items in each SFT prompt (the paper: the top 1)
    max_examples: int | None = Field(400, ge=1)
    rouge_threshold: float = Field(0.5, ge=0, le=1)  # consistency filter for text tasks
    max_think_words: int = Field(80, ge=1)  # brevity filter
    template_fallback: bool = True         # use the template teacher when the LLM teacher fails every try
    template_style: Literal[TEMPLATE_STYLES] = "initial"  # "initial": relate A_base to the gold; "prior": start from the user's usual answer
    strip_unseen_handles: bool = True      # text tasks: drop @handles/#tags/URLs the SFT prompt does not show from SFT targets
    text_target: Literal[TEXT_TARGETS] = "gold"  # text tasks' SFT answer: the gold, or the input's words the gold uses
    seed: int = 0


class ReflectionSFTConfig(SFTConfig):
    """The SFT stage of the reflection model (its prompts are the trajectories')."""

    renamed = {"shots": "trajectories.k"}


class ReflectionRLConfig(RLConfig):
    """The generic RL trainer's settings plus RPO's curriculum and format penalty."""

    renamed = {"k_min": "k_from", "k_max": "k_to", "fixed_k": "{at}k_from = {at}k_to (a fixed k)"}

    max_new_tokens: int = Field(96, ge=1)
    k_from: int = Field(2, ge=1)           # history items k in each prompt at epoch 1 ...
    k_to: int = Field(6, ge=1)             # ... rising by one every epochs_per_step epochs up to k_to (equal: a fixed k)
    epochs_per_step: int = Field(1, ge=1)  # E_step
    format_penalty: float | None = None    # None: the task's worst valid reward - 1; refused above it

    @model_validator(mode="after")
    def _k_rises(self) -> ReflectionRLConfig:
        if self.k_from > self.k_to:
            raise ValueError(f"k_from ({self.k_from}) must not be above k_to ({self.k_to})")
        return self


class RPOConfig(Settings):
    """An RPO training run: the data, the method settings it is evaluated with, and its three stages."""

    task: str = "LaMP_3"
    data: str = "../shared/data/reallamp"
    split: Literal["user", "time"] = "user"
    train_part: str = "train"              # "fit" leaves the validation users out, for choosing on --part val
    out: str = "runs/rpo"
    method_config: MethodConfig = Field(default_factory=MethodConfig)  # item_max_words, base sampling: as evaluated
    trajectories: TrajectoryConfig = Field(default_factory=TrajectoryConfig)
    sft: ReflectionSFTConfig = Field(default_factory=ReflectionSFTConfig)
    rl: ReflectionRLConfig = Field(default_factory=ReflectionRLConfig)
    reuse: str | None = None               # read earlier stages (trajectories, sft) from this run folder instead of `out`
    skip_sft: bool = False                 # ablation: RPO without SFT (RL from the untrained model)
    skip_rl: bool = False                  # ablation: RPO without RL
    threads: int | None = Field(None, ge=1)  # torch CPU threads (1 when other jobs share the cores)


def load_config(path: str | Path | None, cli: dict[str, Any] | None = None) -> RPOConfig:
    """An RPOConfig: command-line values (None: not given) over the YAML file over the defaults."""
    return load_settings(RPOConfig, path, cli)


def config_dict(config: RPOConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
