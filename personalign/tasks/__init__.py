"""Task registry: tasks are YAML files in ``personalign/tasks/specs/`` (or any YAML path)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from personalign.errors import ConfigError
from personalign.tasks.spec import TaskSpec

SPEC_DIR = Path(__file__).parent / "specs"


def available_tasks() -> list[str]:
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def get_task(name_or_path: str) -> TaskSpec:
    """Load a task by registered name (``LaMP_3``) or from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SPEC_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown task '{name_or_path}'; choose from: {', '.join(available_tasks())}")
    try:
        raw = yaml.safe_load(path.read_text())
        for key in ("query_markers", "profile_fields", "metrics", "labels", "rating_range"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return TaskSpec(**raw)
    except (OSError, yaml.YAMLError, TypeError) as exc:
        raise ConfigError(f"{path}: invalid task spec: {exc}") from exc


def infer_task(profile: list[dict]) -> TaskSpec:
    """Guess the task from the fields of a history's items (used by ``personalize``)."""
    fields = set().union(*(item.keys() for item in profile)) if profile else set()
    matches = [t for t in map(get_task, available_tasks()) if set(t.profile_fields) <= fields]
    if not matches:
        raise ConfigError(f"cannot infer the task from profile fields {sorted(fields)}; pass --task")
    return max(matches, key=lambda t: len(t.profile_fields))
