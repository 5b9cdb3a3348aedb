"""RPO stage 2: REINFORCE++-baseline (OpenRLHF ``advantage_estimator=reinforce_baseline``) with RPO's curriculum.

Each step samples ``n = samples_per_prompt`` completions per prompt, rewards them with the task metric,
and builds token advantages with :func:`personalign.rpo.advantages.reinforce_pp_baseline`: the reward minus
its group mean on the last token, ``-beta * KL_t`` (k1, policy vs frozen SFT reference) on every token,
returns with gamma = 1, whitened over all completion tokens of the batch. The loss is PPO's clipped
surrogate, token-level masked mean; ``kl_mode="loss"`` puts KL in the loss (k2) instead of the reward.
The number of profile shots k in the prompt follows ``curriculum.schedule`` across epochs.

How TRL's ``GRPOTrainer(scale_rewards="batch", beta>0)`` differs from this exact form: its advantage is
one number per sequence, ``(r - group mean) / std of the raw rewards over the batch``, broadcast to every
token, and KL enters only as a k3 loss term. Here the advantage is per token: reward-to-go of the centered
reward plus the ``-beta * KL_t`` shaping, whitened (mean 0, std 1) over tokens rather than sequences.

Log-probs use logits / temperature (the distribution that was sampled, as in OpenRLHF and TRL); sampling
uses ``top_p`` with ``top_k`` disabled.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from personalign.backends import shorten_messages
from personalign.errors import ConfigError
from personalign.rpo.advantages import reinforce_pp_baseline
from personalign.rpo.config import RLConfig, RPOConfig
from personalign.rpo.curriculum import schedule
from personalign.rpo.model_io import load_trainable, save_model
from personalign.rpo.prompts import parse_reflection, reflection_messages
from personalign.rpo.rewards import task_reward
from personalign.tasks import get_task

MICRO_BATCH = 8  # sequences per forward pass


@dataclass
class RLPrompt:
    """One RL example: the query, the base LLM's answer, the user's ranked history (best first) and the gold."""

    task_input: str
    base_answer: str
    items: list[dict]
    gold: str
    id: str = ""
    summary: str = ""                 # user statistics line (prompts.user_summary)


def _check(rl: RLConfig, prompts: list[RLPrompt]) -> list[int]:
    if not prompts:
        raise ConfigError("RL needs at least one prompt")
    if rl.kl_mode not in ("reward", "loss"):
        raise ConfigError(f"rl.kl_mode must be 'reward' or 'loss', got '{rl.kl_mode}'")
    if rl.samples_per_prompt < 2 or rl.prompts_per_step < 1 or rl.updates_per_batch < 1 or rl.save_every < 1:
        raise ConfigError("rl.samples_per_prompt must be >= 2; prompts_per_step, updates_per_batch, save_every >= 1")
    try:
        return schedule(rl.epochs, rl.k_min, rl.k_max, rl.epochs_per_step, rl.fixed_k)
    except ValueError as exc:
        raise ConfigError(f"rl: {exc}") from None


def epoch_order(n_prompts: int, epoch: int, rl: RLConfig) -> list[int]:
    """The prompts of one epoch: a shuffle seeded by (seed, epoch), cut to ``prompts_per_epoch``."""
    order = list(range(n_prompts))
    random.Random(rl.seed * 100_003 + epoch).shuffle(order)
    return order[: rl.prompts_per_epoch] if rl.prompts_per_epoch else order


def _prompt_ids(tokenizer: Any, messages: list[dict], budget: int) -> list[int]:
    """Chat-templated prompt ids; too long -> the longest message is cut in the middle, then the end is kept."""
    def ids(ms: list[dict]) -> list[int]:
        text = tokenizer.apply_chat_template(ms, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return ids(shorten_messages(messages, lambda ms: len(ids(ms)), budget))[-budget:]


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
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
                      temperature: float, autocast: Any) -> torch.Tensor:
    """Log-probs [B, T] of the ``completion`` tokens (the last T columns of ``ids``), micro-batched."""
    width = completion.shape[1]
    position_ids = (attn.cumsum(dim=1) - 1).clamp(min=0)  # left padding: positions start at each row's first token
    chunks = []
    for s in range(0, ids.shape[0], MICRO_BATCH):
        sl = slice(s, s + MICRO_BATCH)
        with autocast():
            logits = model(input_ids=ids[sl], attention_mask=attn[sl], position_ids=position_ids[sl],
                           logits_to_keep=width + 1, use_cache=False).logits[:, :-1]
        logits = logits.float() / temperature
        picked = logits.gather(-1, completion[sl].unsqueeze(-1)).squeeze(-1)
        chunks.append(picked - torch.logsumexp(logits, dim=-1))
    return torch.cat(chunks)


@dataclass
class _Run:
    """What one RL step needs."""

    rl: RLConfig
    task: Any
    tokenizer: Any
    policy: Any
    ref: Any
    optimizer: Any
    device: torch.device
    item_max_words: int
    eos_ids: set[int] = field(default_factory=set)
    autocast: Any = nullcontext


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


@dataclass
class _State:
    """Where training stands: completed steps, current epoch (1-based), next position in the epoch's order."""

    step: int = 0
    epoch: int = 1
    position: int = 0


def _save_checkpoint(out_dir: Path, policy: Any, tokenizer: Any, optimizer: Any, state: _State, init_model: str) -> None:
    """Write the checkpoint to a temp folder (trainer_state.json last), then swap it in."""
    final, tmp = out_dir / "checkpoint", out_dir / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(policy, tokenizer, tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    rng = {"python": random.getstate(), "torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    torch.save(rng, tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({
        "step": state.step, "epoch": state.epoch, "position": state.position, "init_model": init_model,
        "optimizer": "optimizer.pt", "rng": "rng.pt"}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def _find_checkpoint(out_dir: Path) -> Path | None:
    for path in (out_dir / "checkpoint", out_dir / "checkpoint.tmp"):  # .tmp is whole once its state is written
        if (path / "trainer_state.json").is_file():
            return path
    return None


def _restore(checkpoint: Path, optimizer: Any, device: torch.device) -> _State:
    meta = json.loads((checkpoint / "trainer_state.json").read_text())
    optimizer.load_state_dict(torch.load(checkpoint / meta["optimizer"], map_location=device, weights_only=False))
    rng = torch.load(checkpoint / meta["rng"], weights_only=False)
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return _State(meta["step"], meta["epoch"], meta["position"])


def _trim_log(log_path: Path, last_step: int) -> None:
    """Drop log lines of steps after the checkpoint (they are redone)."""
    if log_path.is_file():
        lines = [ln for ln in log_path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= last_step]
        log_path.write_text("".join(ln + "\n" for ln in lines))


def _rl_step(batch: list[RLPrompt], k: int, run: _Run) -> dict[str, Any]:
    """Sample, reward, compute advantages and run ``updates_per_batch`` clipped policy-gradient updates."""
    rl, task, tok, policy, ref, dev = run.rl, run.task, run.tokenizer, run.policy, run.ref, run.device
    n, autocast = rl.samples_per_prompt, run.autocast
    rows = [_prompt_ids(tok, reflection_messages(task, p.task_input, p.base_answer, p.items[:k], run.item_max_words,
                                                 p.summary), rl.max_prompt_tokens) for p in batch]
    prompt_ids, prompt_attn = (t.to(dev) for t in _left_pad(rows, tok.pad_token_id))
    policy.eval()
    t0 = time.perf_counter()
    with torch.no_grad(), autocast():
        out = policy.generate(input_ids=prompt_ids, attention_mask=prompt_attn, do_sample=True,
                              temperature=rl.temperature, top_p=rl.top_p, top_k=0, max_new_tokens=rl.max_new_tokens,
                              num_return_sequences=n, pad_token_id=tok.pad_token_id)
    completion = out[:, prompt_ids.shape[1]:]
    generate_seconds = time.perf_counter() - t0
    mask = completion_mask(completion, run.eos_ids).to(dev)
    ids = torch.cat([prompt_ids.repeat_interleave(n, 0), completion], dim=1)
    attn = torch.cat([prompt_attn.repeat_interleave(n, 0), mask], dim=1)
    texts = [tok.decode(row[: int(m.sum())], skip_special_tokens=True) for row, m in zip(completion.tolist(), mask)]
    golds = [p.gold for p in batch for _ in range(n)]
    rewards = torch.tensor([task_reward(task, t, g, rl.format_penalty) for t, g in zip(texts, golds)], device=dev)

    maskf = mask.float()
    tokens = maskf.sum().clamp(min=1.0)
    with torch.no_grad():
        old_logp = sequence_logprobs(policy, ids, attn, completion, rl.temperature, autocast)
        ref_logp = sequence_logprobs(ref, ids, attn, completion, rl.temperature, autocast)
    kl = (old_logp - ref_logp) * maskf
    advantages = reinforce_pp_baseline(rewards, kl if rl.kl_mode == "reward" else torch.zeros_like(kl), mask, n,
                                       rl.beta)
    policy.train()
    losses = []
    for _ in range(rl.updates_per_batch):
        run.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for s in range(0, ids.shape[0], MICRO_BATCH):
            sl = slice(s, s + MICRO_BATCH)
            new_logp = sequence_logprobs(policy, ids[sl], attn[sl], completion[sl], rl.temperature, autocast)
            loss = policy_loss(new_logp, old_logp[sl], ref_logp[sl], advantages[sl], maskf[sl], tokens, rl.clip_eps,
                               rl.beta if rl.kl_mode == "loss" else 0.0)
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        run.optimizer.step()
        losses.append(total)
    return {"reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
            "format_failure_rate": sum(parse_reflection(t) is None for t in texts) / len(texts),
            "kl_mean": float(kl.sum() / tokens), "loss": sum(losses) / len(losses),
            "tokens_generated": int(mask.sum()), "completion_len_mean": float(mask.sum(1).float().mean()),
            "prompt_tokens_mean": float(prompt_attn.sum(1).float().mean()), "generate_seconds": round(generate_seconds, 3)}


def train_rl(config: RPOConfig, prompts: list[RLPrompt], init_model: str | Path, out_dir: Path, resume: bool = True,
             item_max_words: int = 40) -> dict:
    """REINFORCE++-baseline from ``init_model`` (also the frozen KL reference); the model goes to ``out_dir/model``."""
    rl, out_dir = config.rl, Path(out_dir)
    ks = _check(rl, prompts)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint = _find_checkpoint(out_dir) if resume else None
    policy, tokenizer = load_trainable(checkpoint or init_model)
    ref = load_trainable(init_model)[0].to(device).eval().requires_grad_(False)
    policy.to(device)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=rl.learning_rate, weight_decay=0.0)  # OpenRLHF's l2=0
    log_path = out_dir / "rl_log.jsonl"
    random.seed(rl.seed)
    torch.manual_seed(rl.seed)
    state = _State()
    if checkpoint:
        state = _restore(checkpoint, optimizer, device)
        _trim_log(log_path, state.step)
    else:
        log_path.write_text("")
    first_step = state.step
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    run = _Run(rl, get_task(config.task), tokenizer, policy, ref, optimizer, device, item_max_words,
               eos_ids={tokenizer.eos_token_id, *_eos_ids(policy.generation_config.eos_token_id)} - {None},
               autocast=(lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext)
    start, last = time.perf_counter(), {}
    while state.epoch <= len(ks):
        k, order = ks[state.epoch - 1], epoch_order(len(prompts), state.epoch, rl)
        batch = [prompts[i] for i in order[state.position: state.position + rl.prompts_per_step]]
        t0 = time.perf_counter()
        stats = _rl_step(batch, k, run)
        state.step += 1
        last = {"step": state.step, "epoch": state.epoch, "k": k, **stats, "seconds": round(time.perf_counter() - t0, 3)}
        with log_path.open("a") as log:
            log.write(json.dumps(last) + "\n")
        print(f"[rl] step {state.step} epoch {state.epoch}/{len(ks)} k={k} reward {stats['reward_mean']:.3f}"
              f"±{stats['reward_std']:.3f} fmt_fail {stats['format_failure_rate']:.0%} kl {stats['kl_mean']:.4f} "
              f"loss {stats['loss']:.4f} {last['seconds']:.1f}s", file=sys.stderr, flush=True)
        state.position += len(batch)
        if state.position >= len(order):
            state.epoch, state.position = state.epoch + 1, 0
        if state.step % rl.save_every == 0 or state.epoch > len(ks):
            _save_checkpoint(out_dir, policy, tokenizer, optimizer, state, str(init_model))
    seconds = time.perf_counter() - start
    done = state.step - first_step
    save_model(policy, tokenizer, out_dir / "model")
    return {"steps": state.step, "steps_this_run": done, "resumed_from_step": first_step if checkpoint else None,
            "epochs": len(ks), "k_schedule": ks, "final_reward_mean": last.get("reward_mean"),
            "final_kl_mean": last.get("kl_mean"), "seconds": round(seconds, 2),
            "seconds_per_step": round(seconds / done, 2) if done else None, "device": device.type,
            "model": str(out_dir / "model")}


def _eos_ids(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
