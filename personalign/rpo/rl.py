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

from personalign.errors import ConfigError
from personalign.rpo.config import RPOConfig
from personalign.train.curriculum import schedule
from personalign.rpo.prompts import parse_reflection, reflection_messages
from personalign.rpo.rewards import format_penalty, task_reward
from personalign.tasks import get_task
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


class ReflectionRLTrainer(RLTrainer[RLPrompt]):
    """RLTrainer with RPO's prompts, curriculum and reward."""

    def __init__(self, config: RPOConfig, prompts: list[RLPrompt], init_model: str | Path, out_dir: str | Path,
                 item_max_words: int = 40):
        rl, task = config.rl, get_task(config.task)
        try:
            self.shots = schedule(rl.epochs, rl.k_min, rl.k_max, rl.epochs_per_step, rl.fixed_k)
        except ValueError as exc:
            raise ConfigError(f"rl: {exc}") from None
        penalty = format_penalty(task, rl.format_penalty)

        def render(prompt: RLPrompt, epoch: int) -> Messages:
            return reflection_messages(task, prompt.task_input, prompt.base_answer, prompt.items[: self.shots[epoch - 1]],
                                       item_max_words, prompt.summary)

        def reward(completions: list[str], rows: list[Any]) -> list[float]:
            self.last_format_failures = sum(parse_reflection(t) is None for t in completions) / len(completions)
            return [task_reward(task, text, row.gold, penalty) for text, row in zip(completions, rows)]

        super().__init__(rl, init_model, prompts, render, reward, out_dir,
                         log_fields=lambda epoch: {"k": self.shots[epoch - 1], "format_penalty": penalty},
                         fingerprint={"task": config.task, "item_max_words": item_max_words})

    def step(self, batch: list[RLPrompt], epoch: int) -> dict[str, Any]:
        stats = super().step(batch, epoch)
        return {**stats, "format_failure_rate": self.last_format_failures}


def train_rl(config: RPOConfig, prompts: list[RLPrompt], init_model: str | Path, out_dir: Path, resume: bool = True,
             item_max_words: int = 40) -> dict:
    """REINFORCE++-baseline from ``init_model`` (also the frozen KL reference); the model goes to ``out_dir/model``."""
    trainer = ReflectionRLTrainer(config, prompts, init_model, out_dir, item_max_words)
    return {**trainer.train(resume), "k_schedule": trainer.shots}
