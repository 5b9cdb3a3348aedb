"""Checks that keep rescoring honest: score against the data as it is now, never against stale copies.

A prediction log stores each row's gold as it was at run time. ``rescore`` and ``report`` read the
golds from the run's data instead, after checking that the data still hashes to the log's run key;
a log made from other data, or holding ids the data lacks, is refused by name, never scored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from personalign.data.lamp_io import files_sha256, find_split_files, read_outputs
from personalign.errors import ConfigError
from personalign.tasks.spec import TaskSpec

# the scalar fields of a scored row (``scoring.summarize``) that ``report --extra`` can show
REPORT_EXTRAS = ("n", "unparsable_rate", "fallback_rate", "empty_rate", "prompt_tokens/ex",
                 "answer_prompt_tokens/ex", "completion_tokens/ex", "s/ex", "wall_s", "limit", "seed")


def manifest_data_dir(run_dir: Path) -> str | None:
    """The data folder a run was made from, per its manifest.json (None when there is no manifest)."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        data = manifest.get("data_dir") or manifest["config"]["data"]
        if not isinstance(data, str):
            raise TypeError("data is not a string")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is damaged ({type(exc).__name__}); pass --data DIR, or run the same "
                          "`personalign eval` again to rewrite it (rows already computed are kept)") from None
    return data


class DataGolds:
    """The golds of a run folder's data as the files hold them now, loaded once per split."""

    def __init__(self, run_dir: Path, data: str | Path | None = None):
        self.run_dir = Path(run_dir)
        if data is not None and not Path(data).is_dir():
            raise ConfigError(f"--data {data} is not a folder")
        self.data = data if data is not None else manifest_data_dir(self.run_dir)
        self._loaded: dict[tuple[str, str, str], tuple[str, dict[str, str] | None, list[Path]]] = {}
        self._warned = False

    def _load(self, task: TaskSpec, split: str, part: str) -> tuple[str, dict[str, str] | None, list[Path]] | None:
        if self.data is None or not Path(self.data).is_dir():
            if not self._warned:
                where = f"{self.data} is not there" if self.data else "it has no manifest.json"
                print(f"personalign: warning: {self.run_dir}: cannot check its logs against their data ({where}); "
                      "scored with the golds stored in the logs: pass --data DIR to check them", file=sys.stderr)
                self._warned = True
            return None
        if (task.name, split, part) not in self._loaded:
            questions, outputs = find_split_files(self.data, task.name, split, part)
            paths = [questions] + ([outputs] if outputs else [])
            golds = read_outputs(outputs, task)[1] if outputs else None
            self._loaded[task.name, split, part] = (files_sha256(paths), golds, paths)
        return self._loaded[task.name, split, part]

    def check(self, log: Path, task: TaskSpec, key: dict[str, Any],
              rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
        """``(rows with the data's golds, None)``, or ``(rows, the one-line reason the log is not scored)``."""
        found = self._load(task, str(key.get("split")), str(key.get("part")))
        if found is None:
            return rows, None
        sha, golds, paths = found
        if key.get("data_sha256") != sha:
            return rows, (f"{log}: made from other data than {' and '.join(map(str, paths))} hold now (data_sha256 "
                          f"{str(key.get('data_sha256'))[:12]} -> {sha[:12]}), so its golds are stale: to score the "
                          "data as it is now, run `personalign eval` again into a new --out (unchanged prompts come "
                          "from the LLM cache), or restore the data")
        if golds is None:  # a split without golds (test): nothing to score against
            return rows, None
        unknown = [str(r["id"]) for r in rows if str(r["id"]) not in golds]
        if unknown:
            return rows, (f"{log}: {len(unknown)} row(s) whose id is in no question of {paths[0]} (first: id "
                          f"{json.dumps(unknown[0])}); delete those lines, or delete the log and its .key.json and run "
                          "`personalign eval` again")
        return [{**r, "gold": golds[str(r["id"])]} for r in rows], None
