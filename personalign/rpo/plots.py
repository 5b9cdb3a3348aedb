"""Training curves: RL reward and KL per step for several runs (curriculum vs fixed k), SFT loss."""

from __future__ import annotations

import json
from pathlib import Path

from personalign.errors import ConfigError


def read_log(path: str | Path) -> list[dict]:
    """The JSON lines of a training log."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training log not found: {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rl_curves(log_paths: dict[str, Path], out_png: Path) -> Path:
    """Reward (top) and KL to the reference (bottom) against step, one line per run label."""
    if not log_paths:
        raise ConfigError("plot_rl_curves needs at least one RL log")
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for label, path in log_paths.items():
        rows = read_log(path)
        steps = [r["step"] for r in rows]
        top.plot(steps, [r["reward_mean"] for r in rows], marker=".", label=label)
        bottom.plot(steps, [r["kl_mean"] for r in rows], marker=".", label=label)
    top.set_ylabel("mean reward")
    bottom.set_ylabel("KL to SFT policy (k1)")
    bottom.set_xlabel("RL step")
    top.legend()
    bottom.xaxis.get_major_locator().set_params(integer=True)  # steps are whole numbers
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    return _save(fig, plt, out_png)


def plot_sft_loss(log_path: Path, out_png: Path) -> Path:
    """SFT training loss against step."""
    plt = _pyplot()
    rows = [r for r in read_log(log_path) if r.get("loss") is not None]
    fig, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker=".")
    axis.set_xlabel("SFT step")
    axis.set_ylabel("loss (completion tokens)")
    axis.grid(alpha=0.3)
    return _save(fig, plt, out_png)


def _save(fig, plt, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
