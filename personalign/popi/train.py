"""``personalign train popi rl``: POPI's summarizer trained with the generic REINFORCE++-baseline trainer.

POPI supplies :class:`personalign.train.rl.RLTrainer` with its prompts (one train user's history per
prompt), a renderer (the summarizer prompt) and a reward that runs the frozen generator on each sampled
summary, cut to the budget, and scores its answer with the task metric minus a length penalty. The
trained summarizer goes to ``<out>/<task>/rl/model``; ``personalign export`` makes it a GGUF for the
``popi`` method's ``summarizer`` option. The generator is optimized too, as an option, by
``personalign train popi generator`` (``personalign.popi.generator``); point ``generator`` at its export
to train the summarizer against the trained generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from personalign.backends import get_llm
from personalign.backends.base import LLM
from personalign.config import MethodConfig, Settings, load_settings
from personalign.data.lamp_io import files_sha256, find_split_files, load_split
from personalign.engine import answer_requests
from personalign.errors import ConfigError
from personalign.manifest import write_manifest
from personalign.popi.summary import answer_score, conditioned_input, enforce_budget, summary_messages, summary_reward
from personalign.store import default_cache_dir
from personalign.tasks import get_task
from personalign.train.advantages import informative_groups
from personalign.train.distributed import main_process, process_sum
from personalign.train.rl import RLConfig, RLTrainer
from personalign.train.sft import SFTConfig
from personalign.types import GenParams, Messages, Request


class SummarizerRLConfig(RLConfig):
    """The generic RL trainer's settings for the summarizer (short completions: summaries)."""

    max_new_tokens: int = Field(64, ge=1)
    threads: int | None = Field(None, ge=1)  # torch CPU threads (1 when other jobs share the cores)


class GeneratorSFTConfig(SFTConfig):
    """The generator's SFT (``personalign train popi generator``): shorter prompts than RPO's."""

    max_length: int = Field(1024, ge=1)
    learning_rate: float = Field(1e-5, gt=0)


class POPIConfig(Settings):
    """Every POPI training hyperparameter (YAML: ``configs/popi/``). ``method_config`` is the ``popi`` method's
    :class:`~personalign.config.MethodConfig` (``summary_items``, ``item_max_words``): the summarizer is trained
    on the summary prompt the method sends when evaluated."""

    renamed = {"summary_items": "method_config.summary_items", "item_max_words": "method_config.item_max_words"}

    task: str = "LaMP_3"
    data: str = "../shared/data/reallamp"
    split: Literal["user", "time"] = "user"
    train_part: str = "train"              # "fit" leaves the validation users out
    out: str = "runs/popi"
    method_config: MethodConfig = Field(default_factory=MethodConfig)
    summarizer: str = "bundled"            # the initial (trainable) summarizer: bundled, a GGUF, an HF folder
    summarizer_options: dict[str, Any] = {}  # its backend when it writes generator-SFT summaries
    generator: str = "llamacpp"            # the frozen generator the reward runs: any backend spec
    generator_options: dict[str, Any] = {}
    summary_budget: int = Field(48, ge=1)  # generator tokens (the popi method's summary_budget option)
    length_penalty: float = Field(0.1, ge=0)  # reward -= length_penalty * (summary tokens / budget)
    max_questions: int | None = Field(64, ge=1)  # train questions used as RL prompts (seeded sample)
    seed: int = 0
    rl: SummarizerRLConfig = Field(default_factory=SummarizerRLConfig)
    generator_questions: int | None = Field(128, ge=1)  # train questions for the generator's SFT (seeded sample)
    generator_sft: GeneratorSFTConfig = Field(default_factory=GeneratorSFTConfig)


def load_popi_config(path: str | Path | None, cli: dict[str, Any] | None = None) -> POPIConfig:
    """A POPIConfig: command line over YAML over defaults; ``{task}`` in ``generator`` becomes the task (a trained
    generator per task)."""
    config = load_settings(POPIConfig, path, cli)
    config.generator = config.generator.replace("{task}", config.task)
    return config


@dataclass
class SummaryPrompt:
    """One RL prompt: a train user's history, a question of theirs and its gold."""

    id: str
    task_input: str
    items: list[dict]
    gold: str


class SummarizerRLTrainer(RLTrainer[SummaryPrompt]):
    """RLTrainer with POPI's summarizer prompt and the generator-in-the-loop reward."""

    def __init__(self, config: POPIConfig, prompts: list[SummaryPrompt], generator: LLM, out_dir: str | Path,
                 init_model: str | Path | None = None):
        task, budget = get_task(config.task), config.summary_budget

        def render(prompt: SummaryPrompt, epoch: int) -> Messages:
            return summary_messages(task, prompt.items, config.method_config.summary_items,
                                    config.method_config.item_max_words, budget)

        def reward(completions: list[str], rows: list[Any]) -> list[float]:
            summaries = [enforce_budget(text, budget, generator.count_tokens) for text in completions]
            params = GenParams(max_tokens=task.max_new_tokens, temperature=0.0, seed=config.seed)
            requests = [Request([{"role": "user", "content": conditioned_input(row.task_input, s)}], params)
                        for s, row in zip(summaries, rows)]
            answers = answer_requests(requests, {"base": generator})
            self.last_tokens = [generator.count_tokens(s) if s else 0 for s in summaries]
            self.last_scores = [answer_score(task, a.text, row.gold) for a, row in zip(answers, rows)]
            return [summary_reward(score, n, budget, config.length_penalty)
                    for score, n in zip(self.last_scores, self.last_tokens)]

        super().__init__(config.rl, init_model or config.summarizer, prompts, render, reward, out_dir,
                         fingerprint={"task": config.task, "generator": generator.identity(), "budget": budget,
                                      "length_penalty": config.length_penalty, "summary_items": config.method_config.summary_items,
                                      "item_max_words": config.method_config.item_max_words})

    def step(self, batch: list[SummaryPrompt], epoch: int) -> dict[str, Any]:
        """The generic step, plus the summary length and the share of groups whose task metric ties (their
        only signal is the length penalty, so ``zero_variance_share`` does not count them)."""
        self.last_scores, self.last_tokens = [], []  # this process's share; under accelerate it may be empty
        stats = super().step(batch, epoch)
        varies = informative_groups(torch.tensor(self.last_scores, dtype=torch.float64), self.config.samples_per_prompt)
        tokens, summaries, varied, groups = process_sum(torch.tensor(
            [sum(self.last_tokens), len(self.last_tokens), float(varies.sum()), len(varies)], dtype=torch.float64,
            device=self.accelerator.device)).tolist()
        return {**stats, "summary_tokens_mean": tokens / max(1.0, summaries),
                "task_tied_share": 1.0 - varied / groups if groups else 0.0}


def train_questions(config: POPIConfig, count: int | None, seed: int) -> tuple[list, dict[str, str], str]:
    """A seeded sample of ``count`` train questions with a history and a gold, the golds and the data hash
    (sets the torch CPU threads of ``config.rl.threads``: one setting for both POPI stages)."""
    if config.rl.threads:
        torch.set_num_threads(config.rl.threads)
    examples, golds = load_split(config.data, get_task(config.task), config.split, config.train_part)
    if golds is None:
        raise ConfigError(f"{config.task} {config.split} {config.train_part} split has no outputs file (golds are needed)")
    examples = [e for e in examples if e.profile and e.id in golds]
    if count is not None and count < len(examples):
        examples = random.Random(seed).sample(examples, count)
    files = find_split_files(config.data, config.task, config.split, config.train_part)
    return examples, golds, files_sha256([p for p in files if p])


def train_popi(config: POPIConfig, cache_dir: str | None = None, resume: bool = True) -> dict[str, Any]:
    """Train the summarizer on the train users' questions; write ``<out>/<task>/rl`` with its manifest."""
    examples, golds, data_hash = train_questions(config, config.max_questions, config.seed)
    prompts = [SummaryPrompt(e.id, e.input, list(e.profile), golds[e.id]) for e in examples]
    generator = get_llm(config.generator, cache_path=Path(cache_dir or default_cache_dir()) / "llm.sqlite", **config.generator_options)
    out = Path(config.out) / config.task / "rl"
    if main_process():  # under `accelerate launch`, one process writes the manifest
        write_manifest(out / "manifest.json", config, data_hash, {"stage": "popi-rl", "status": "running"})
    summary = SummarizerRLTrainer(config, prompts, generator, out).train(resume)
    if main_process():
        write_manifest(out / "manifest.json", config, data_hash, {"stage": "popi-rl", "status": "done", "summary": summary})
    return summary
