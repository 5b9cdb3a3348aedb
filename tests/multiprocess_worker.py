"""Run by ``tests/test_train_multiprocess.py`` under ``accelerate launch`` with 1 or N CPU processes (gloo).

``python multiprocess_worker.py MODEL_DIR OUT_DIR [--resume]`` trains a tiny model: one RL step of
``RL_PROMPTS_PER_STEP`` prompts (two updates), then SFT with ``SFT_BATCH // N`` examples a process. The first
process saves each RL update's all-reduced gradients before clipping, SFT step 1's gradients after clipping
(its log has the norm before), and the logs. ``--resume`` also runs RL three ways from one start: two steps
straight; the same stopped as step 2 begins, after step 1's checkpoint; and that run resumed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import personalign.train.rl as rl_module
from personalign.train.rl import RLConfig, RLTrainer
from personalign.train.sft import SFTConfig, SFTTrainer

RL_PROMPTS_PER_STEP = 4
SFT_BATCH = 4
WORDS = "red green blue tea cake moon river song stone cloud lamp book".split()
# With seed 0, step 1 takes prompts [2, 3, 4, 0]: on 2 processes [2, 4] and [3, 0], where prompt 3's rewards all tie,
# so its group leaves the loss and the second process runs fewer backward passes; step 2 takes [1] alone, so the
# second process has no prompt at all.
PROMPTS = [{"id": i, "text": f"Name a colour, then {WORDS[i]} {WORDS[i + 4]}.", "tie": i == 3} for i in range(5)]
SFT_RECORDS = [{"messages": [{"role": "user", "content": f"Say {WORDS[i]} and {WORDS[-1 - i]}."}],
                "target": f"{WORDS[i]} {WORDS[-1 - i]} " * (1 + i % 3)} for i in range(8)]


def render(prompt: dict, epoch: int) -> list[dict]:
    return [{"role": "user", "content": prompt["text"]}]


def reward(completions: list[str], prompts: list[dict]) -> list[float]:
    """The share of distinct characters: it varies between samples; the tied prompt scores 1 every time."""
    return [1.0 if p["tie"] else len(set(text)) / max(len(text), 1) for text, p in zip(completions, prompts)]


class Interrupted(Exception):
    pass


class StopsInStep2(RLTrainer):
    """Stopped as step 2 begins (on every process), after step 1's checkpoint was written."""

    def step(self, batch: list[dict], epoch: int) -> dict[str, Any]:
        if self.state.step == 1:
            raise Interrupted
        return super().step(batch, epoch)


class SeededPerPrompt(RLTrainer):
    """Real sampling, seeded per (step, prompt): a prompt's completions do not depend on which process draws it,
    so 1 and N processes train on the same samples and their gradients must agree."""

    def _sample(self, batch: list[dict], epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str], float]:
        parts = []
        for prompt in batch:
            torch.manual_seed(1000 * self.state.step + prompt["id"])
            parts.append(super()._sample([prompt], epoch))
            self.sampled.append(prompt["id"])
        pad = self.tokenizer.pad_token_id
        prompt_width = max(full.shape[1] - comp.shape[1] for full, _, comp, _, _ in parts)
        comp_width = max(comp.shape[1] for _, _, comp, _, _ in parts)
        ids, attn, comps, texts = [], [], [], []
        for full, mask, comp, text, _ in parts:  # left-pad the prompts, right-pad the completions
            left, right = prompt_width - (full.shape[1] - comp.shape[1]), comp_width - comp.shape[1]
            ids.append(F.pad(full, (left, right), value=pad))
            attn.append(F.pad(mask, (left, right), value=0))
            comps.append(F.pad(comp, (0, right), value=pad))
            texts += text
        return torch.cat(ids), torch.cat(attn), torch.cat(comps), texts, 0.0


def rl_config(steps: int) -> RLConfig:
    return RLConfig(samples_per_prompt=4, max_new_tokens=10, epochs=1, prompts_per_step=RL_PROMPTS_PER_STEP,
                    prompts_per_epoch=RL_PROMPTS_PER_STEP * steps, micro_batch=3, save_every=1, beta=0.05, updates_per_batch=2,
                    learning_rate=1e-3, max_prompt_tokens=64, seed=0)


def capture_gradients(store: list[dict[str, torch.Tensor]]) -> None:
    """Keep each update's all-reduced gradients before ``clipped_step`` clips and applies them."""
    original = rl_module.clipped_step

    def capturing(accelerator: Any, model: Any, optimizer: Any, max_norm: float = 1.0) -> bool:
        weights = accelerator.unwrap_model(model).named_parameters()
        store.append({name: p.grad.detach().clone() for name, p in weights if p.grad is not None})
        return original(accelerator, model, optimizer, max_norm)

    rl_module.clipped_step = capturing


def log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rl_equivalence(model: str, out: Path, main: bool, rank: int) -> None:
    grads: list[dict[str, torch.Tensor]] = []
    capture_gradients(grads)
    trainer = SeededPerPrompt(rl_config(steps=1), model, PROMPTS, render, reward, out / "rl")
    trainer.sampled = []
    trainer.train(resume=False)
    (out / f"rl_sampled_{rank}.json").write_text(json.dumps(trainer.sampled))
    if main:
        torch.save({"grads": grads, "log": log(out / "rl" / "rl_log.jsonl")}, out / "rl.pt")


def rl_resume(model: str, out: Path, main: bool) -> None:
    """Two steps straight; the same run stopped as step 2 begins (after step 1's checkpoint), then resumed."""
    RLTrainer(rl_config(steps=2), model, PROMPTS, render, reward, out / "straight").train(resume=False)
    try:
        StopsInStep2(rl_config(steps=2), model, PROMPTS, render, reward, out / "resumed").train(resume=False)
    except Interrupted:
        pass
    summary = RLTrainer(rl_config(steps=2), model, PROMPTS, render, reward, out / "resumed").train(resume=True)
    if main:
        (out / "resume.json").write_text(json.dumps(summary))


def sft_equivalence(model: str, out: Path, processes: int) -> None:
    config = SFTConfig(model=model, epochs=1, batch_size=SFT_BATCH // processes, learning_rate=1e-3, warmup_ratio=0.0,
                       max_length=64, checkpoints=0, seed=0)
    sft = SFTTrainer(config, SFT_RECORDS, out / "sft")
    trainer, grads = sft.trainer, []

    from transformers import TrainerCallback

    class ClippedGradients(TrainerCallback):  # after clipping; the log has the norm before
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            grads.append({n: p.grad.detach().clone() for n, p in kwargs["model"].named_parameters()
                          if p.grad is not None})

    trainer.add_callback(ClippedGradients())
    sft.train(resume=False)
    if trainer.is_world_process_zero():
        torch.save({"grads": grads[:1], "log": log(out / "sft" / "sft_log.jsonl")}, out / "sft.pt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # as the trainers make it: gloo on CPU
    rl_equivalence(args.model, args.out, state.is_main_process, state.process_index)
    sft_equivalence(args.model, args.out, state.num_processes)
    if args.resume:
        rl_resume(args.model, args.out, state.is_main_process)


if __name__ == "__main__":
    main()
