"""Every RPO hyperparameter, in one dataclass tree loadable from YAML (defaults follow the paper)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from personalign.config import load_dataclass
from personalign.rpo.template_teacher import TEMPLATE_STYLES, TEXT_TARGETS
from personalign.train.rl import RLConfig


@dataclass
class TrajectoryConfig:
    base_llm: str = "llamacpp"             # the black-box base model that writes A_base
    base_llm_options: dict[str, Any] = field(default_factory=dict)
    teacher_llm: str = "llamacpp"          # any backend; an API model when one is given
    teacher_llm_options: dict[str, Any] = field(default_factory=dict)
    teacher_samples: int = 4               # teacher tries per example before giving up
    llm_teacher_examples: int | None = None  # ask the LLM teacher for the first N examples only (None: all)
    teacher_temperature: float = 0.7
    teacher_max_tokens: int = 160
    retriever: str = "bm25"
    max_examples: int | None = 400
    rouge_threshold: float = 0.5           # consistency filter for text tasks
    max_think_words: int = 80              # brevity filter
    template_fallback: bool = True         # use the template teacher when the LLM teacher fails every try
    template_style: str = "initial"        # "initial": relate A_base to the gold; "prior": start from the user's usual answer
    strip_unseen_handles: bool = True      # text tasks: drop @handles/#tags/URLs absent from the input from SFT targets
    text_target: str = "gold"              # text tasks' SFT answer: the gold, or "kept_input": the input's words the gold uses
    item_max_words: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        if self.template_style not in TEMPLATE_STYLES:
            raise ValueError(f"template_style {self.template_style!r} is not one of {list(TEMPLATE_STYLES)}")
        if self.text_target not in TEXT_TARGETS:
            raise ValueError(f"text_target {self.text_target!r} is not one of {list(TEXT_TARGETS)}")


@dataclass
class SFTConfig:
    model: str = "bundled"                 # "bundled" SmolLM2 GGUF, a GGUF path, or an HF folder/name
    epochs: float = 1.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-6
    warmup_ratio: float = 0.05
    max_length: int = 2048
    shots: int = 1                         # top-1 history example during SFT (paper)
    max_examples: int | None = None        # train on the first N accepted trajectories (None: all)
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    checkpoints: int = 4                   # resumable checkpoints per run (0: none, for short GPU runs)
    group_by_length: bool = False          # batches of similar length: less padding (GPU throughput)
    liger_kernel: bool = False             # Liger's fused RMSNorm, SwiGLU and RoPE kernels (CUDA + triton)
    torch_compile: bool = False            # torch.compile the model (GPU throughput; compiles on the first steps)
    pad_to_multiple_of: int | None = None  # fewer distinct batch shapes, for torch_compile
    report_to: list[str] = field(default_factory=list)  # transformers trackers: "tensorboard", "wandb", ...
    seed: int = 0


@dataclass
class ReflectionRLConfig(RLConfig):
    """The generic RL trainer's settings plus RPO's curriculum and format penalty."""

    max_new_tokens: int = 96
    k_min: int = 2                         # profile shots at epoch 1 ...
    k_max: int = 6                         # ... rising by one every epochs_per_step epochs up to k_max
    epochs_per_step: int = 1               # E_step
    fixed_k: int | None = None             # fixed-shot ablation (k=2, 4, 6)
    format_penalty: float | None = None    # None: the task's worst valid reward - 1; refused above it


@dataclass
class RPOConfig:
    task: str = "LaMP_3"
    data: str = "../shared/data/reallamp"
    split: str = "user"
    train_part: str = "train"              # "fit" leaves the validation users out, for choosing on --part val
    out: str = "runs/rpo"
    trajectories: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: ReflectionRLConfig = field(default_factory=ReflectionRLConfig)
    reuse: str | None = None               # read earlier stages (trajectories, sft) from this run folder instead of `out`
    skip_sft: bool = False                 # ablation: RPO without SFT (RL from the untrained model)
    skip_rl: bool = False                  # ablation: RPO without RL
    threads: int | None = None             # torch CPU threads (1 when other jobs share the cores)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> RPOConfig:
    """An RPOConfig from a YAML file, then top-level overrides."""
    return load_dataclass(RPOConfig, path, overrides)


def config_dict(config: RPOConfig) -> dict[str, Any]:
    return asdict(config)
