"""RL checkpoints: accelerate's ``save_state``/``load_state`` (weights, optimizer, every RNG, the trainer
state), written to a temp folder and swapped in, plus a fingerprint that refuses to resume under drift."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from personalign.errors import ConfigError

FINGERPRINT = "fingerprint.json"


@dataclass
class TrainerState:
    """Where training stands: completed steps, current epoch (1-based), next position in the epoch's order."""

    step: int = 0
    epoch: int = 1
    position: int = 0

    def state_dict(self) -> dict[str, int]:
        return asdict(self)

    def load_state_dict(self, values: dict[str, int]) -> None:
        self.step, self.epoch, self.position = values["step"], values["epoch"], values["position"]


def find_checkpoint(out_dir: Path) -> Path | None:
    """The latest whole checkpoint: ``checkpoint/``, or ``checkpoint.tmp/`` once its fingerprint is written."""
    for path in (out_dir / "checkpoint", out_dir / "checkpoint.tmp"):
        if (path / FINGERPRINT).is_file():
            return path
    return None


def drop_tied_copies(models: list[Any], weights: list[dict[str, Any]], output_dir: str) -> None:
    """A ``save_state`` pre-hook: keep one name per tied tensor (SmolLM2's ``lm_head`` *is* its input embedding).

    safetensors cannot store two names for one tensor, so accelerate would drop the copy itself and log
    "Removed shared tensor ... while saving". Dropping it here is the same save, done on purpose: on
    ``load_state`` safetensors' ``load_model`` accepts the absent alias and the model still shares the one
    tensor, so both names get the saved values (``tests/test_rpo_demo.py`` checks the round trip).
    """
    for state in weights:
        seen: set[tuple[int, int, tuple[int, ...], Any]] = set()
        for name in list(state):
            tensor = state[name]
            if not hasattr(tensor, "untyped_storage"):
                continue
            key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
            if key in seen:
                del state[name]
            else:
                seen.add(key)


def save_checkpoint(accelerator: Any, out_dir: Path, fingerprint: dict[str, Any]) -> Path:
    """``accelerator.save_state`` into ``checkpoint.tmp`` (fingerprint last), then swap it for ``checkpoint``."""
    final, tmp = out_dir / "checkpoint", out_dir / "checkpoint.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    handle = accelerator.register_save_state_pre_hook(drop_tied_copies)
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
    finally:
        handle.remove()
    if accelerator.is_main_process:
        (tmp / FINGERPRINT).write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    accelerator.wait_for_everyone()
    return final


def drift(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """``name old → new`` for every leaf that differs between two fingerprints."""
    changes = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += drift(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key} {json.dumps(old)} → {json.dumps(new)}")
    return changes


def check_resume(checkpoint: Path, fingerprint: dict[str, Any]) -> None:
    """A one-line ConfigError unless ``checkpoint`` was written under this exact fingerprint."""
    try:
        saved = json.loads((checkpoint / FINGERPRINT).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{checkpoint / FINGERPRINT}: unreadable ({exc}); delete {checkpoint} to start over") from None
    changes = drift(saved, fingerprint)
    if changes:
        raise ConfigError(f"{checkpoint}: refusing to resume, the run changed: {'; '.join(changes)}. "
                          f"Restore the old settings, or delete {checkpoint.parent} to start over")
