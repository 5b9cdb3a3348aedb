"""RPO stage 2: the reflection model trained with the generic REINFORCE++-baseline trainer.

RPO supplies three things to :class:`personalign.train.rl.RLTrainer`: the prompts (query, A_base, the
user's ranked history, gold), a renderer that puts the first k history items in the reflection prompt with
k following the progressive curriculum (``curriculum.schedule``), and the task reward with its format
penalty (``rewards.task_reward``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from personalign.rpo.config import RPOConfig
from personalign.rpo.prompts import parse_reflection, reflection_messages
from personalign.rpo.rewards import format_penalty, task_reward
from personalign.tasks import get_task
from personalign.tasks.spec import TaskSpec
from personalign.train.curriculum import schedule
from personalign.train.distributed import process_sum
from personalign.train.rl import RLTrainer
from personalign.types import Messages


@dataclass
class RLPrompt:
    """One RL example: the query, the base LLM's answer, the user's ranked history (best first) and the gold."""

    task_input: str
    base_answer: str
    items: list[dict]
    gold: str
    id: str = ""
    summary: str = ""                 # user statistics line (prompts.user_summary)


def rl_messages(task: TaskSpec, prompt: RLPrompt, k: int, item_max_words: int | None) -> Messages:
    """An RL example's reflection prompt with its first ``k`` items: the ``rpo`` method's prompt for the same
    A_base, items and ``item_max_words`` (tests/test_rpo_prompts.py checks that they are equal)."""
    return reflection_messages(task, prompt.task_input, prompt.base_answer, prompt.items[:k], item_max_words,
                               prompt.summary)


class ReflectionRLTrainer(RLTrainer[RLPrompt]):
    """RLTrainer with RPO's prompts, curriculum and reward."""

    def __init__(self, config: RPOConfig, prompts: list[RLPrompt], init_model: str | Path, out_dir: str | Path):
        rl, task = config.rl, get_task(config.task)
        item_max_words = config.method_config.item_max_words  # as the rpo method renders items when evaluated
        self.k_schedule = schedule(rl.epochs, rl.k_from, rl.k_to, rl.epochs_per_step)
        penalty = format_penalty(task, rl.format_penalty)

        def render(prompt: RLPrompt, epoch: int) -> Messages:
            return rl_messages(task, prompt, self.k_schedule[epoch - 1], item_max_words)

        def reward(completions: list[str], rows: list[Any]) -> list[float]:
            self.format_failures = [sum(parse_reflection(t) is None for t in completions), len(completions)]
            return [task_reward(task, text, row.gold, penalty) for text, row in zip(completions, rows)]

        super().__init__(rl, init_model, prompts, render, reward, out_dir,
                         log_fields=lambda epoch: {"k": self.k_schedule[epoch - 1], "format_penalty": penalty},
                         fingerprint={"task": config.task, "item_max_words": item_max_words})

    def step(self, batch: list[RLPrompt], epoch: int) -> dict[str, Any]:
        self.format_failures = [0, 0]  # (malformed, completions) on this process; a process may have no prompts
        stats = super().step(batch, epoch)
        failures, total = process_sum(torch.tensor(self.format_failures, dtype=torch.float64,
                                                      device=self.accelerator.device)).tolist()
        return {**stats, "format_failure_rate": failures / total if total else 0.0}


def train_rl(config: RPOConfig, prompts: list[RLPrompt], init_model: str | Path, out_dir: Path,
             resume: bool = True) -> dict:
    """REINFORCE++-baseline from ``init_model`` (also the frozen KL reference); the model goes to ``out_dir/model``."""
    trainer = ReflectionRLTrainer(config, prompts, init_model, out_dir)
    return {**trainer.train(resume), "k_schedule": trainer.k_schedule}
