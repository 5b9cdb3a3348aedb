"""Build a LaMP-format benchmark (user and time splits) from a team's own per-user JSONL records.

Each line: ``{"user_id", "input", "output", "timestamp"?, "id"?, ...task profile fields}``.
A user's records are ordered by ``timestamp`` (ISO 8601 strings, compared as text; records without
one count as older than dated ones and keep their file order). A question's profile holds only the
user's strictly earlier records (the most recent ``max_profile``), never the question's own record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalign.data.lamp_io import PARTS, SPLITS, Where, as_text, write_outputs, write_questions
from personalign.errors import ConfigError, DataError
from personalign.tasks.spec import TaskSpec
from personalign.types import Example


@dataclass(frozen=True)
class _Record:
    id: str
    user_id: str
    input: str
    output: str
    timestamp: str | None
    item: dict[str, Any]


def _get(raw: dict, key: str, where: Where, numbers: str, required: bool = True) -> str | None:
    """A string field of a JSONL record (``numbers``: see :func:`as_text`); None when absent."""
    if raw.get(key) is None:
        if required:
            raise where.error(key, "missing")
        return None
    return as_text(raw[key], where, key, numbers, nonempty=required)


def _make_item(raw: dict, task: TaskSpec, where: Where, rid: str, text: str, output: str,
               timestamp: str | None) -> dict[str, Any]:
    """The profile item a record becomes: the task's fields, from the record or its input/output."""
    fallback = {task.input_field: text, task.output_field: output}
    item: dict[str, Any] = {}
    for name in task.profile_fields:
        if raw.get(name) is not None:
            item[name] = _get(raw, name, where, "any", required=False)
        elif name in fallback:
            item[name] = fallback[name]
        else:
            raise where.error(name, f"missing (a {task.name} profile field)")
    item["id"] = rid
    if timestamp is not None:
        item["date"] = timestamp
    return item


def _parse_line(line: str, where: Where, task: TaskSpec, counts: dict[str, int]) -> _Record:
    try:
        raw = json.loads(line)
    except ValueError as exc:
        raise where.error(None, f"invalid JSON: {exc}") from None
    except RecursionError:  # the stdlib parser recurses per level: memory stays linear, the depth is refused
        raise where.error(None, "invalid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise where.error(None, "expected a JSON object")
    user_id = _get(raw, "user_id", where, "int")
    text = _get(raw, "input", where, "none")
    output = _get(raw, "output", where, "any")
    timestamp = _get(raw, "timestamp", where, "none", required=False)
    rid = _get(raw, "id", where, "int", required=False) or f"{user_id}-{counts.get(user_id, 0)}"
    counts[user_id] = counts.get(user_id, 0) + 1
    item = _make_item(raw, task, where, rid, text, output, timestamp)
    return _Record(rid, user_id, text, output, timestamp, item)


def _read_records(path: Path, task: TaskSpec) -> dict[str, list[_Record]]:
    """Records grouped per user (users in order of first appearance), each user's sorted by time."""
    users: dict[str, list[_Record]] = {}
    counts: dict[str, int] = {}
    first_line: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = Where(path, f"at line {number}")
                record = _parse_line(line, where, task, counts)
                if record.id in first_line:
                    first = first_line[record.id]
                    raise where.error("id", f"duplicate id {json.dumps(record.id)} (first on line {first})")
                first_line[record.id] = number
                users.setdefault(record.user_id, []).append(record)
    except UnicodeDecodeError:
        raise DataError(str(path), None, None, "not UTF-8 text") from None
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot read file: {exc.strerror or exc}") from None
    if not users:
        raise DataError(str(path), None, None, "no records")
    for records in users.values():
        records.sort(key=lambda r: (r.timestamp is not None, r.timestamp or ""))
    return users


def _question(records: list[_Record], index: int, task: TaskSpec, min_profile: int,
              max_profile: int) -> tuple[Example, str] | None:
    """Record ``index`` as a question with the user's strictly earlier records as its profile."""
    query = records[index]
    earlier = [r for r in records[:index]
               if query.timestamp is None or r.timestamp is None or r.timestamp < query.timestamp]
    if len(earlier) < min_profile:
        return None
    profile = [r.item for r in earlier[-max_profile:]]
    example = Example(id=query.id, input=task.format_input(query.input), profile=profile,
                      user_id=query.user_id, date=query.timestamp)
    return example, query.output


def _user_part(seed: int, user_id: str, dev_frac: float, test_frac: float) -> str:
    position = int(hashlib.sha256(f"{seed}:{user_id}".encode()).hexdigest(), 16) % 10000 / 10000
    return "dev" if position < dev_frac else "test" if position < dev_frac + test_frac else "train"


def _check_options(dev_frac: float, test_frac: float, min_profile: int, max_profile: int) -> None:
    if not (0 <= dev_frac <= 1 and 0 <= test_frac <= 1 and dev_frac + test_frac <= 1):
        raise ConfigError(f"dev_frac={dev_frac} and test_frac={test_frac} must be in [0, 1] and sum to at most 1")
    if min_profile < 0 or max_profile < max(min_profile, 1):
        raise ConfigError(f"need 0 <= min_profile <= max_profile and max_profile >= 1, "
                          f"got min_profile={min_profile}, max_profile={max_profile}")


def build_benchmark(records_path: str | Path, task: TaskSpec, out_dir: str | Path, seed: int = 0,
                    dev_frac: float = 0.1, test_frac: float = 0.2, min_profile: int = 1,
                    max_profile: int = 100, questions_per_user: int = 1) -> dict[str, dict[str, int]]:
    """Write ``out_dir/<task>/<user|time>/<part>_{questions,outputs}.json``; return question counts.

    User split: each user goes to one part (by a seeded hash) and their latest record is the question; with
    ``questions_per_user`` N, a train user's latest N records each are one (more training data, same users).
    Time split: each user's latest record goes to test, the second latest to dev, the third to train.
    """
    _check_options(dev_frac, test_frac, min_profile, max_profile)
    if questions_per_user < 1:
        raise ConfigError(f"questions_per_user must be >= 1, got {questions_per_user}")
    users = _read_records(Path(records_path), task)
    parts: dict[str, dict[str, list[tuple[Example, str]]]] = {s: {p: [] for p in PARTS} for s in SPLITS}
    for user_id, records in users.items():
        part = _user_part(seed, user_id, dev_frac, test_frac)
        for back in range(1, min(len(records), questions_per_user if part == "train" else 1) + 1):
            made = _question(records, len(records) - back, task, min_profile, max_profile)
            if made:
                parts["user"][part].append(made)
        for back, part in enumerate(("test", "dev", "train"), start=1):
            made = _question(records, len(records) - back, task, min_profile, max_profile) \
                if len(records) >= back else None
            if made:
                parts["time"][part].append(made)
    counts: dict[str, dict[str, int]] = {}
    for split, by_part in parts.items():
        folder = Path(out_dir) / task.name / split
        for part, questions in by_part.items():
            write_questions(folder / f"{part}_questions.json", (q for q, _ in questions))
            write_outputs(folder / f"{part}_outputs.json", task.name, ((q.id, gold) for q, gold in questions))
        counts[split] = {part: len(questions) for part, questions in by_part.items()}
    return counts
