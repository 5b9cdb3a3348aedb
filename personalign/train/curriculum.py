"""RPO's progressive multi-context curriculum: K(e) = min(k_to, k_from + floor((e - 1) / E_step)).

``k`` is the number of history items in a prompt (the name every config uses); the curriculum takes it from
``k_from`` at epoch 1 up to ``k_to``. ``k_from == k_to`` is a fixed k (the paper's fixed-shot ablation).
"""

from __future__ import annotations


def k_for_epoch(epoch: int, k_from: int = 2, k_to: int = 6, epochs_per_step: int = 1) -> int:
    """History items k at (1-based) curriculum epoch ``epoch``."""
    if epoch < 1 or epochs_per_step < 1 or k_from > k_to:
        raise ValueError(f"bad curriculum: epoch={epoch}, k_from={k_from}, k_to={k_to}, E_step={epochs_per_step}")
    return min(k_to, k_from + (epoch - 1) // epochs_per_step)


def schedule(epochs: int, k_from: int = 2, k_to: int = 6, epochs_per_step: int = 1) -> list[int]:
    """k for each epoch 1..epochs."""
    return [k_for_epoch(e, k_from, k_to, epochs_per_step) for e in range(1, epochs + 1)]
