"""One RL step on several processes (``accelerate launch``): each takes its share of the prompts, sums span all.

A prompt's whole group of samples stays on one process, so group baselines and tied-group checks are
local; whitening, the loss's token count and the logged statistics are sums over every process, so a
step gives the same loss and gradient on 1 process as on N (``tests/test_train_multiprocess.py``).
With a single process (or no ``torch.distributed`` group) the sums are the values themselves.
"""

from __future__ import annotations

import os
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def main_process() -> bool:
    """Whether this is the process that writes manifests and prints summaries (rank 0, or the only one).
    Read from ``RANK``, which ``accelerate launch`` / torchrun set before any process group exists."""
    return os.environ.get("RANK", "0") == "0"


def shard(batch: Sequence[T], index: int, count: int) -> list[T]:
    """Process ``index`` of ``count`` takes every ``count``-th prompt; empty when there are fewer prompts than processes."""
    return list(batch[index::count])


def _all_reduce(value: torch.Tensor, op: dist.ReduceOp.RedOpType) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=op)
    return value


def process_sum(value: torch.Tensor) -> torch.Tensor:
    """``value`` summed over every process (a collective call: every process must make it, in the same order)."""
    return _all_reduce(value, dist.ReduceOp.SUM)


def process_max(value: torch.Tensor) -> torch.Tensor:
    """``value``'s maximum over every process (a collective call, like :func:`process_sum`)."""
    return _all_reduce(value, dist.ReduceOp.MAX)
