"""A run folder's prediction logs, read for scoring and reports (shared by ``rescore`` and ``report``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from personalign.engine.predictions import read_log_checked
from personalign.errors import ConfigError


def run_logs(run_dir: Path, problems: list[str] | None = None) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``{row label: (run key, rows in log order)}`` for every keyed log of a run folder.

    With ``problems``, a log that cannot be scored (no run key, no readable row) is added to it, and damaged
    lines are said on stderr; without it, such logs are left out quietly (the caller already said so).
    """
    logs = {}
    paths = sorted((run_dir / "predictions").glob("*.jsonl"), key=lambda p: ("#" in p.stem, p.stem))  # own rows first
    for path in paths:
        key, rows, damaged = read_log_checked(path)
        redo = f"delete it and {path.with_suffix('.key.json').name}, and run `personalign eval` again to recompute it"
        if problems is not None and damaged and rows:
            more = f" (and {len(damaged) - 1} more damaged lines)" if len(damaged) > 1 else ""
            print(f"personalign: warning: {path}: {damaged[0]}{more}; skipped: run the same `personalign eval` again "
                  "to recompute it", file=sys.stderr)
        if key is None or not rows:
            if problems is not None:
                problems.append(f"{path}: has no run key ({path.with_suffix('.key.json').name}); move it away or " + redo
                                if key is None else
                                f"{path}: holds no readable rows ({len(damaged)} damaged lines); " + redo)
            continue
        logs[path.stem] = (key, list(rows.values()))
    return logs


def find_run_dirs(root: str | Path) -> list[Path]:
    """Run folders (those holding ``predictions/``) at or below ``root``."""
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"{root} does not exist")
    found = sorted({p.parent for p in root.rglob("predictions") if p.is_dir()} |
                   ({root} if (root / "predictions").is_dir() else set()))
    if not found:
        raise ConfigError(f"no prediction logs under {root} (run `personalign eval` first)")
    return found
