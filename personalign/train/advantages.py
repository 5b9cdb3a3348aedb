"""REINFORCE++-baseline advantages (OpenRLHF ``reinforce_baseline``), exactly.

1. r~ = r - mean of the prompt's group of n samples.
2. Per-token rewards: -beta * KL_t at every completion token, plus r~ on the last token.
3. Returns with gamma = 1: A_t = sum over t' >= t of r_t'.
4. Whiten A over every completion token of the batch (masked mean and std).

Groups whose rewards all tie carry no preference between their samples. Their centred reward is 0, so
what is left is the -beta * KL shaping, which whitening would blow up to unit size. ``informative_groups``
finds them, and the trainer drops their tokens from whitening and from the loss.
"""

from __future__ import annotations

from typing import Callable

import torch

Sum = Callable[[torch.Tensor], torch.Tensor]


def _same(value: torch.Tensor) -> torch.Tensor:
    return value


def group_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Rewards minus their group mean; ``rewards`` is flat, grouped in consecutive runs of ``group_size``."""
    grouped = rewards.view(-1, group_size)
    return (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)


def informative_groups(rewards: torch.Tensor, group_size: int, eps: float = 1e-12) -> torch.Tensor:
    """A bool per sample: does its group's reward vary? (flat, like ``rewards``)."""
    grouped = rewards.view(-1, group_size)
    varies = (grouped.max(dim=1).values - grouped.min(dim=1).values) > eps
    return varies.repeat_interleave(group_size)


def token_returns(centered: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Reward-to-go per token: r~ on each sequence's last real token, -beta*KL on every token."""
    mask = mask.to(kl.dtype)
    rewards = -beta * kl * mask
    last = (mask.cumsum(dim=1) == mask.sum(dim=1, keepdim=True)) & (mask > 0)
    rewards = rewards + last.to(kl.dtype) * centered.unsqueeze(1)
    return torch.flip(torch.cumsum(torch.flip(rewards, [1]), dim=1), [1]) * mask


def whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8, total: Sum = _same) -> torch.Tensor:
    """(values - mean) / std over the masked tokens of the whole batch; ``total`` sums a count over every
    process when the batch is split across several (``personalign.train.distributed.process_sum``)."""
    mask = mask.to(values.dtype)
    count = total(mask.sum()).clamp(min=1.0)
    mean = total((values * mask).sum()) / count
    var = total((((values - mean) ** 2) * mask).sum()) / count
    return (values - mean) * torch.rsqrt(var + eps) * mask


def reinforce_pp_baseline(rewards: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, group_size: int,
                          beta: float, total: Sum = _same) -> torch.Tensor:
    """Token advantages for a batch of ``B * group_size`` sampled completions (whitened with ``total``'s sums)."""
    return whiten(token_returns(group_baseline(rewards, group_size), kl, mask, beta), mask, total=total)
