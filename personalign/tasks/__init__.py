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


def infer_task(profile: list[dict], query: str | None = None) -> TaskSpec:
    """Guess the task from the fields of a history's items (used by ``personalize``).

    The tasks whose fields cover the most of the history's fields match. When several do (LaMP_1
    and LaMP_5 both have title+abstract; LaMP_4 and LaMP_6 both have title+text), a query written
    in one task's input template decides; otherwise the choice is refused, never guessed.
    """
    fields = set().union(*(item.keys() for item in profile)) if profile else set()
    matches = [t for t in map(get_task, available_tasks()) if set(t.profile_fields) <= fields]
    if not matches:
        raise ConfigError(f"cannot infer the task from profile fields {sorted(fields)}; pass --task")
    most = max(len(t.profile_fields) for t in matches)
    best = [t for t in matches if len(t.profile_fields) == most]
    if len(best) > 1 and query:
        by_template = [t for t in best if query.startswith(t.input_template.split("{input}")[0])]
        best = by_template or best
    if len(best) > 1:
        raise ConfigError(f"profile fields {sorted(fields)} fit {', '.join(t.name for t in best)}; pass --task")
    return best[0]
