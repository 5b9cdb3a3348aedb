"""A generic REINFORCE++-baseline trainer (OpenRLHF ``advantage_estimator=reinforce_baseline``), shaped like TRL's.

``RLTrainer(config, model, prompts, render, reward)``: ``render(prompt, epoch)`` gives a prompt's chat
messages at a (1-based) epoch, so a curriculum lives in the caller; ``reward(completions, prompts)`` is a
plain function returning one float per completion. RPO trains its reflection model with it
(``personalign.rpo.rl``), and a POPI summarizer would pass its own prompts and reward.

Each step samples ``n = samples_per_prompt`` completions per prompt and builds token advantages with
:func:`personalign.train.advantages.reinforce_pp_baseline`: the reward minus its group mean on the last
token, ``-beta * KL_t`` (k1, policy vs the frozen initial model) on every token, returns with gamma = 1,
whitened over the completion tokens of the batch. Groups whose rewards all tie are dropped from whitening
and from the loss, and their share is logged. The loss is PPO's clipped surrogate, a token-level masked
mean; ``kl_mode="loss"`` puts KL in the loss (k2) instead of the reward.

The policy stays in eval mode (dropout off) for sampling, the old log-probs and the updates alike, so the
first update's ratio is exactly 1 (logged as ``first_ratio_error``). Log-probs use logits / temperature,
the distribution that was sampled; sampling uses ``top_p`` with ``top_k`` disabled.

How TRL's ``GRPOTrainer(scale_rewards="batch", beta>0)`` differs: its advantage is one number per sequence,
``(r - group mean) / std of the raw rewards over the batch``, and KL enters only as a k3 loss term.

accelerate does device placement, bf16 autocast, ``report_to`` trackers and checkpoints (weights,
optimizer and every RNG); the trainer runs under ``accelerate launch`` on one process or several (DDP:
each takes its share of a step's prompts, ``personalign.train.distributed``).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Generic, Literal, Sequence, TypeVar

import torch
from pydantic import Field

from personalign.backends import content_sha256, shorten_messages
from personalign.config import Settings
from personalign.errors import ConfigError
from personalign.train.advantages import informative_groups, reinforce_pp_baseline
from personalign.train.checkpoint import TrainerState, check_resume, find_checkpoint, save_checkpoint
from personalign.train.distributed import process_max, process_sum, shard
from personalign.types import Messages

P = TypeVar("P")
RewardFn = Callable[[list[str], list[Any]], list[float]]


class RLConfig(Settings):
    """Every hyperparameter of the generic RL trainer (defaults follow the RPO paper)."""

    samples_per_prompt: int = Field(16, ge=2)   # completions per prompt; the baseline is their mean (>= 2)
    temperature: float = Field(1.0, gt=0)  # sampling; log-probs use logits / temperature
    top_p: float = Field(0.9, gt=0, le=1)
    max_new_tokens: int = Field(96, ge=1)
    beta: float = Field(0.01, ge=0)        # KL coefficient to the frozen initial policy
    kl_mode: Literal["reward", "loss"] = "reward"  # "reward" (per-token -beta*KL, k1) or "loss" (k2 KL loss)
    clip_eps: float = Field(0.2, gt=0)
    learning_rate: float = Field(5e-7, gt=0)
    prompts_per_step: int = Field(2, ge=1)
    updates_per_batch: int = Field(1, ge=1)
    epochs: int = Field(5, ge=1)
    prompts_per_epoch: int | None = Field(16, ge=1)  # None: every prompt
    max_prompt_tokens: int = Field(1024, ge=1)
    micro_batch: int = Field(8, ge=1)      # sequences per forward pass; the loss is summed over them
    save_every: int = Field(10, ge=0)      # steps between resumable checkpoints (and one at the end); 0: none
    report_to: list[str] = []              # accelerate trackers: "tensorboard", "wandb", ...
    seed: int = 0


def epoch_order(n_prompts: int, epoch: int, config: RLConfig) -> list[int]:
    """The prompts of one epoch: a shuffle seeded by (seed, epoch), cut to ``prompts_per_epoch``."""
    order = list(range(n_prompts))
    random.Random(config.seed * 100_003 + epoch).shuffle(order)
    return order[: config.prompts_per_epoch] if config.prompts_per_epoch else order


def prompt_ids(tokenizer: Any, messages: Messages, budget: int) -> list[int]:
    """Chat-templated prompt ids; too long -> the longest message is cut in the middle, then the end is kept."""
    def ids(ms: Messages) -> list[int]:
        text = tokenizer.apply_chat_template(ms, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return ids(shorten_messages(messages, lambda ms: len(ids(ms)), budget))[-budget:]


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def completion_mask(tokens: torch.Tensor, eos_ids: set[int]) -> torch.Tensor:
    """1 on completion tokens up to and including the first EOS, 0 after it."""
    is_eos = torch.zeros_like(tokens, dtype=torch.bool)
    for eos in eos_ids:
        is_eos |= tokens == eos
    before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # EOS tokens strictly before each position
    return (before == 0).long()


def sequence_logprobs(model: Any, ids: torch.Tensor, attn: torch.Tensor, completion: torch.Tensor,
                      temperature: float, micro_batch: int) -> torch.Tensor:
    """Log-probs [B, T] of the ``completion`` tokens (the last T columns of ``ids``), micro-batched."""
    width = completion.shape[1]
    if not len(ids):  # a process with no prompts in this step
        return torch.zeros(completion.shape, device=ids.device)
    position_ids = (attn.cumsum(dim=1) - 1).clamp(min=0)  # left padding: positions start at each row's first token
    chunks = []
    for s in range(0, ids.shape[0], micro_batch):
        sl = slice(s, s + micro_batch)
        logits = model(input_ids=ids[sl], attention_mask=attn[sl], position_ids=position_ids[sl],
                       logits_to_keep=width + 1, use_cache=False).logits[:, :-1]
        logits = logits.float() / temperature
        picked = logits.gather(-1, completion[sl].unsqueeze(-1)).squeeze(-1)
        chunks.append(picked - torch.logsumexp(logits, dim=-1))
    return torch.cat(chunks)


def policy_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, n_tokens: torch.Tensor | float, clip_eps: float, kl_beta: float = 0.0) -> torch.Tensor:
    """PPO-clipped surrogate (+ ``kl_beta`` * k2 KL to the reference), summed over ``mask`` / ``n_tokens``.

    ``n_tokens`` is the completion-token count of the whole batch, so micro-batch losses add up to its token mean.
    """
    ratio = torch.exp(new_logp - old_logp)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    per_token = -torch.min(ratio * advantages, clipped * advantages)
    if kl_beta:
        per_token = per_token + kl_beta * 0.5 * (new_logp - ref_logp) ** 2
    return (per_token * mask).sum() / n_tokens


def checkpoint_due(step: int, finished: bool, save_every: int) -> bool:
    """A resumable checkpoint every ``save_every`` steps and at the end; none at all when ``save_every`` is 0."""
    return bool(save_every) and (step % save_every == 0 or finished)


def clipped_step(accelerator: Any, model: Any, optimizer: Any, max_norm: float = 1.0) -> bool:
    """Clip the gradient norm to ``max_norm`` and step; an inf/NaN gradient (a bf16 overflow, seen on the GPU
    in our trainer and in TRL's alike) skips the step instead, so the weights stay finite. True if it stepped."""
    norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
    if not torch.isfinite(torch.as_tensor(norm)):
        return False
    optimizer.step()
    return True


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    value = model.generation_config.eos_token_id
    listed = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
    return {tokenizer.eos_token_id, *listed} - {None}


def _model_identity(spec: str | Path) -> str:
    """A local model's content hash (a retrained model at the same path is another model), else its name."""
    from personalign.train.model_io import resolve_model

    path = Path(resolve_model(spec))
    return content_sha256(path) if path.exists() else str(spec)


class RLTrainer(Generic[P]):
    """REINFORCE++-baseline on ``prompts`` from ``model`` (also the frozen KL reference) into ``out_dir``."""

    def __init__(self, config: RLConfig, model: str | Path, prompts: Sequence[P], render: Callable[[P, int], Messages],
                 reward: RewardFn, out_dir: str | Path, log_fields: Callable[[int], dict[str, Any]] | None = None,
                 fingerprint: dict[str, Any] | None = None):
        if not prompts:
            raise ConfigError("RL needs at least one prompt")
        self.config, self.init_model, self.prompts = config, model, list(prompts)
        self.render, self.reward, self.out_dir = render, reward, Path(out_dir)
        self.log_fields = log_fields or (lambda epoch: {})
        self.extra_fingerprint = fingerprint or {}
        self.state = TrainerState()

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: the config, the initial model's content, the prompts."""
        prompts = json.dumps([p if isinstance(p, dict) else asdict(p) for p in self.prompts], sort_keys=True)  # type: ignore[call-overload]
        config = self.config.model_dump(exclude={"report_to", "save_every"})  # no effect on results
        return {"config": config, "init_model": _model_identity(self.init_model),
                "prompts_sha256": hashlib.sha256(prompts.encode()).hexdigest(), **self.extra_fingerprint}

    def _setup(self, resume: bool) -> Path | None:
        from accelerate import Accelerator

        from personalign.train.model_io import load_trainable

        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = find_checkpoint(self.out_dir) if resume else None
        self.fingerprint_now = self.fingerprint()
        if checkpoint:
            check_resume(checkpoint, self.fingerprint_now)
        cuda = torch.cuda.is_available()
        self.accelerator = Accelerator(cpu=not cuda, log_with=cfg.report_to or None, project_dir=str(self.out_dir),
                                       mixed_precision="bf16" if cuda and torch.cuda.is_bf16_supported() else "no")
        # sampling and the old log-probs need whole weights on every process (ZeRO-3 and FSDP shard them), and
        # under DeepSpeed accelerate steps the optimizer at every backward, where a step here spans several
        if self.accelerator.distributed_type.value in ("DEEPSPEED", "FSDP"):
            raise ConfigError(f"the RL trainer runs on one or more processes with DDP, not under "
                              f"{self.accelerator.distributed_type.value}: launch it without a DeepSpeed or FSDP "
                              f"accelerate config (docs/rpo.md, \"Several GPUs and machines\")")
        policy, self.tokenizer = load_trainable(self.init_model)
        self.ref = load_trainable(self.init_model)[0].to(self.accelerator.device).eval().requires_grad_(False)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.learning_rate, weight_decay=0.0)  # OpenRLHF's l2=0
        self.policy, self.optimizer = self.accelerator.prepare(policy, optimizer)
        self.policy.eval()  # one mode for sampling, old log-probs and updates
        self.accelerator.register_for_checkpointing(self.state)
        self.eos_ids = _eos_ids(self.tokenizer, policy)
        random.seed(cfg.seed + self.accelerator.process_index)  # each process samples its own completions
        torch.manual_seed(cfg.seed + self.accelerator.process_index)
        if checkpoint:
            self.accelerator.load_state(str(checkpoint))
        if cfg.report_to:
            self.accelerator.init_trackers("rl", config=cfg.model_dump(exclude={"report_to"}))
        return checkpoint

    def _sample(self, batch: list[P], epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str], float]:
        cfg, tok, dev = self.config, self.tokenizer, self.accelerator.device
        rows = [prompt_ids(tok, self.render(p, epoch), cfg.max_prompt_tokens) for p in batch]
        ids, attn = (t.to(dev) for t in left_pad(rows, tok.pad_token_id))
        t0 = time.perf_counter()
        with torch.no_grad(), self.accelerator.autocast():
            out = self.accelerator.unwrap_model(self.policy).generate(
                input_ids=ids, attention_mask=attn, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
                top_k=0, max_new_tokens=cfg.max_new_tokens, num_return_sequences=cfg.samples_per_prompt,
                pad_token_id=tok.pad_token_id)
        completion = out[:, ids.shape[1]:]
        mask = completion_mask(completion, self.eos_ids).to(dev)
        texts = [tok.decode(row[: int(m.sum())], skip_special_tokens=True) for row, m in zip(completion.tolist(), mask)]
        n = cfg.samples_per_prompt
        full = torch.cat([ids.repeat_interleave(n, 0), completion], dim=1)
        full_attn = torch.cat([attn.repeat_interleave(n, 0), mask], dim=1)
        return full, full_attn, completion, texts, time.perf_counter() - t0

    def _logprobs(self, model: Any, ids: torch.Tensor, attn: torch.Tensor, completion: torch.Tensor) -> torch.Tensor:
        with self.accelerator.autocast():
            return sequence_logprobs(model, ids, attn, completion, self.config.temperature, self.config.micro_batch)

    def step(self, batch: list[P], epoch: int) -> dict[str, Any]:
        """Sample, reward, compute advantages and run ``updates_per_batch`` clipped policy-gradient updates.

        ``batch`` is this process's share of the step's prompts (maybe none); whitening, the loss's token
        count and the statistics span every process, and each runs as many backward passes as the busiest.
        """
        cfg, n, mb, acc = self.config, self.config.samples_per_prompt, self.config.micro_batch, self.accelerator
        if batch:
            ids, attn, completion, texts, generate_seconds = self._sample(batch, epoch)
            prompt_rows = [p for p in batch for _ in range(n)]
            rewards = torch.tensor(self.reward(texts, prompt_rows), dtype=torch.float32, device=ids.device)
            if rewards.shape != (len(texts),):
                raise ConfigError(f"the reward function returned {tuple(rewards.shape)} values for {len(texts)} completions")
        else:  # more processes than prompts: this one only joins the sums and the gradient all-reduces
            ids = attn = completion = torch.zeros((0, 1), dtype=torch.long, device=acc.device)
            texts, generate_seconds, rewards = [], 0.0, torch.zeros(0, device=acc.device)
        mask = attn[:, -completion.shape[1]:].float()
        keep = informative_groups(rewards, n).float().unsqueeze(1)
        train_mask = mask * keep
        tokens = process_sum(train_mask.sum()).clamp(min=1.0)  # the whole step's: each process's loss is its share
        with torch.no_grad():  # the bare model: DDP's forward broadcasts buffers, a collective every process must join
            old_logp = self._logprobs(acc.unwrap_model(self.policy), ids, attn, completion)
            ref_logp = self._logprobs(self.ref, ids, attn, completion)
        kl = (old_logp - ref_logp) * mask
        advantages = reinforce_pp_baseline(rewards, kl if cfg.kl_mode == "reward" else torch.zeros_like(kl),
                                           train_mask, n, cfg.beta, total=process_sum)
        chunks = [slice(s, s + mb) for s in range(0, ids.shape[0], mb) if train_mask[s: s + mb].sum() > 0]
        passes = int(process_max(torch.tensor(len(chunks), device=acc.device)))  # each backward is an all-reduce
        losses, first_ratio_error, nonfinite = [], 0.0, 0
        for update in range(cfg.updates_per_batch if passes else 0):
            self.optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for sl in chunks:
                new_logp = self._logprobs(self.policy, ids[sl], attn[sl], completion[sl])
                if update == 0:
                    error = ((new_logp.detach() - old_logp[sl]).abs() * mask[sl]).max()
                    first_ratio_error = max(first_ratio_error, float(error))
                loss = policy_loss(new_logp, old_logp[sl], ref_logp[sl], advantages[sl], train_mask[sl], tokens,
                                   cfg.clip_eps, cfg.beta if cfg.kl_mode == "loss" else 0.0)
                acc.backward(loss * acc.num_processes)  # DDP averages gradients; the step's loss is their sum
                total += loss.item()
            for _ in range(passes - len(chunks)):
                acc.backward(self._idle_loss())
            nonfinite += not clipped_step(acc, self.policy, self.optimizer)
            losses.append(float(process_sum(torch.tensor(total, dtype=torch.float64, device=acc.device))))
        return {**self._step_stats(rewards, keep, kl, mask, attn), "loss": sum(losses) / len(losses) if losses else 0.0,
                "updated": len(losses) > nonfinite, "nonfinite_grad_updates": nonfinite,
                "first_ratio_error": float(process_max(torch.tensor(first_ratio_error, device=acc.device))),
                "generate_seconds": round(float(process_max(torch.tensor(generate_seconds, device=acc.device))), 3),
                "samples": texts[:2]}

    def _idle_loss(self) -> torch.Tensor:
        """A zero loss through every weight: a process out of chunks still joins the busiest one's all-reduces."""
        pad = torch.full((1, 1), self.tokenizer.pad_token_id, device=self.accelerator.device)
        with self.accelerator.autocast():
            return self.policy(input_ids=pad, use_cache=False).logits.float().sum() * 0.0

    def _step_stats(self, rewards: torch.Tensor, keep: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor,
                    attn: torch.Tensor) -> dict[str, Any]:
        """The step's reward, tie, KL and length statistics over the completions of every process."""
        local = [len(rewards), rewards.sum(), (rewards.double() ** 2).sum(), keep.sum(), kl.sum(), mask.sum(),
                 (attn.sum(1) - mask.sum(1)).sum()]
        sums = process_sum(torch.tensor([float(v) for v in local], dtype=torch.float64, device=rewards.device))
        count, reward_sum, reward_squares, kept, kl_sum, tokens, prompt_tokens = sums.tolist()
        count = max(count, 1.0)
        variance = (reward_squares - reward_sum ** 2 / count) / (count - 1) if count > 1 else float("nan")
        return {"reward_mean": reward_sum / count, "reward_std": max(variance, 0.0) ** 0.5,
                "zero_variance_share": 1.0 - kept / count, "kl_mean": kl_sum / max(tokens, 1.0),
                "tokens_generated": int(tokens), "completion_len_mean": tokens / count,
                "prompt_tokens_mean": prompt_tokens / count}

    def train(self, resume: bool = True) -> dict[str, Any]:
        """Run every epoch (resuming from ``out_dir/checkpoint`` when its fingerprint matches); save ``out_dir/model``."""
        from personalign.train.model_io import save_model

        cfg, state = self.config, self.state
        checkpoint = self._setup(resume)
        log_path = self.out_dir / "rl_log.jsonl"
        if self.accelerator.is_main_process:
            _trim_log(log_path, state.step if checkpoint else 0)
        first_step, start, last = state.step, time.perf_counter(), {}
        while state.epoch <= cfg.epochs:
            order = epoch_order(len(self.prompts), state.epoch, cfg)
            batch = [self.prompts[i] for i in order[state.position: state.position + cfg.prompts_per_step]]
            t0 = time.perf_counter()
            acc = self.accelerator  # several processes: each samples its share of the batch (distributed.py)
            stats = self.step(shard(batch, acc.process_index, acc.num_processes), state.epoch)
            state.step += 1
            last = {"step": state.step, "epoch": state.epoch, **self.log_fields(state.epoch), **stats,
                    "seconds": round(time.perf_counter() - t0, 3)}
            if self.accelerator.is_main_process:
                with log_path.open("a") as log:
                    log.write(json.dumps(last) + "\n")
            if cfg.report_to:
                self.accelerator.log({k: v for k, v in last.items() if isinstance(v, (int, float))}, step=state.step)
            if self.accelerator.is_main_process:
                print(f"[rl] step {state.step} epoch {state.epoch}/{cfg.epochs} reward {stats['reward_mean']:.3f}"
                      f"±{stats['reward_std']:.3f} tied groups {stats['zero_variance_share']:.0%} kl {stats['kl_mean']:.4f} "
                      f"loss {stats['loss']:.4f} {last['seconds']:.1f}s", file=sys.stderr, flush=True)
            state.position += len(batch)
            if state.position >= len(order):
                state.epoch, state.position = state.epoch + 1, 0
            if checkpoint_due(state.step, state.epoch > cfg.epochs, cfg.save_every):
                save_checkpoint(self.accelerator, self.out_dir, self.fingerprint_now)
        seconds, done = time.perf_counter() - start, state.step - first_step
        if self.accelerator.is_main_process:
            save_model(self.accelerator.unwrap_model(self.policy), self.tokenizer, self.out_dir / "model")
        self.accelerator.wait_for_everyone()  # the model is whole on disk before any process goes on
        for tracker in self.accelerator.trackers:  # not end_training(): it destroys the process group, which the
            tracker.finish()                       # launch owns (HF's Trainer leaves it too); a later trainer needs it
        return {"steps": state.step, "steps_this_run": done, "resumed_from_step": first_step if checkpoint else None,
                "epochs": cfg.epochs, "final_reward_mean": last.get("reward_mean"),
                "final_kl_mean": last.get("kl_mean"), "seconds": round(seconds, 2),
                "seconds_per_step": round(seconds / done, 2) if done else None,
                "device": self.accelerator.device.type, "model": str(self.out_dir / "model")}


def _trim_log(log_path: Path, last_step: int) -> None:
    """Keep the log lines of steps up to the checkpoint (later ones are redone); a fresh run starts it empty."""
    lines = log_path.read_text().splitlines() if log_path.is_file() and last_step else []
    log_path.write_text("".join(ln + "\n" for ln in lines if ln.strip() and json.loads(ln)["step"] <= last_step))
