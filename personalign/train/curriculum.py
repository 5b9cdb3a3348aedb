"""RPO's progressive multi-context curriculum: K(e) = min(k_max, k_min + floor((e - 1) / E_step))."""

from __future__ import annotations


def shots_for_epoch(epoch: int, k_min: int = 2, k_max: int = 6, epochs_per_step: int = 1) -> int:
    """Profile shots k at (1-based) curriculum epoch ``epoch``."""
    if epoch < 1 or epochs_per_step < 1 or k_min > k_max:
        raise ValueError(f"bad curriculum: epoch={epoch}, k_min={k_min}, k_max={k_max}, E_step={epochs_per_step}")
    return min(k_max, k_min + (epoch - 1) // epochs_per_step)


def schedule(epochs: int, k_min: int = 2, k_max: int = 6, epochs_per_step: int = 1, fixed_k: int | None = None) -> list[int]:
    """k for each epoch 1..epochs; ``fixed_k`` gives the fixed-shot ablation instead."""
    if fixed_k is not None:
        return [fixed_k] * epochs
    return [shots_for_epoch(e, k_min, k_max, epochs_per_step) for e in range(1, epochs + 1)]
