"""Read and write the official LaMP JSON files, streamed and validated record by record.

Questions file: ``[{"id", "input", "profile": [{...}], "user_id"?, "date"?}, ...]``.
Outputs file: ``{"task": "LaMP_N", "golds": [{"id", "output"}, ...]}``.
Every problem with a file's content is raised as a one-line :class:`DataError`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import ijson

from personalign.data.json_depth import DepthCheckedReader, NestingError
from personalign.errors import ConfigError, DataError, naming
from personalign.tasks.spec import TaskSpec
from personalign.types import Example

SPLITS = ("user", "time")
PARTS = ("train", "dev", "test")
CARVED_PARTS = ("fit", "val")  # a seeded split of the train users: choose designs on val, train on fit
VAL_FRACTION = 0.2
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


def one_line(text: object, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _kind(value: Any) -> str:
    """How a JSON value's type reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _record(index: int, record_id: str | None = None) -> str:
    """``3 (id "310")``: the record's 0-based index plus its id when known."""
    return str(index) if record_id is None else f"{index} (id {json.dumps(one_line(record_id, 60))})"


class Where:
    """The file and record being checked, to build one-line errors."""

    def __init__(self, path: str | Path, record: str | None = None):
        self.path, self.record = path, record

    def error(self, field: str | None, problem: str) -> DataError:
        return DataError(str(self.path), self.record, field, one_line(problem))


def as_text(value: Any, where: Where, field: str, numbers: str = "none", nonempty: bool = False) -> str:
    """Check a JSON value is a string; ``numbers`` "int" or "any" also accepts numbers (as text)."""
    if isinstance(value, str):
        if nonempty and not value.strip():
            raise where.error(field, "must be a non-empty string")
        return value
    ok = (numbers == "int" and type(value) is int) or (numbers == "any" and type(value) in (int, float))
    if not ok:
        wanted = "a string" + {"int": " or an integer", "any": " or a number"}.get(numbers, "")
        raise where.error(field, f"expected {wanted}, got {_kind(value)}")
    try:
        return str(value)
    except ValueError:  # an integer too long to print
        raise where.error(field, "number is too large") from None


def require(obj: dict, key: str, where: Where, field: str | None = None) -> Any:
    """``obj[key]``, or a "missing" DataError naming ``field`` (default: the key)."""
    if key not in obj:
        raise where.error(field or key, "missing")
    return obj[key]


def _check_top(handle: IO[bytes], path: Path, opener: bytes, what: str) -> None:
    """Skip a BOM and whitespace, then check the top-level JSON value starts with ``opener``."""
    if handle.read(3) != _BOM:
        handle.seek(0)
    char = handle.read(1)
    while char and char in b" \t\r\n":
        char = handle.read(1)
    if not char:
        raise DataError(str(path), None, None, "file is empty (expected JSON)")
    if char != opener:
        found = {b"{": "an object", b"[": "a list", b'"': "a string", b"n": "null", b"t": "a boolean",
                 b"f": "a boolean"}.get(char, "a number" if char in b"-0123456789" else "invalid JSON")
        raise DataError(str(path), None, None, f"top level must be {what}, found {found}")
    handle.seek(handle.tell() - 1)


def _stream(path: Path, opener: bytes, what: str, parse: Callable[[IO[bytes]], Iterator[Any]],
            counted: bool = True) -> Iterator[Any]:
    """Yield parsed values from ``parse(handle)``, turning every read or JSON failure into DataError."""
    reached = 0
    try:
        with open(path, "rb") as handle:
            _check_top(handle, path, opener, what)
            for value in parse(DepthCheckedReader(handle)):  # type: ignore[arg-type]
                yield value
                reached += 1
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot read file: {one_line(exc.strerror or exc)}") from None
    except NestingError as exc:
        raise DataError(str(path), None, None, str(exc)) from None
    except (ijson.JSONError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = one_line(str(exc).replace("(right here) ------^", "")) or type(exc).__name__
        raise DataError(str(path), reached if counted else None, None, f"malformed JSON: {detail}") from None


def _profile_item(item: Any, where: Where, field: str, task: TaskSpec | None) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise where.error(field, f"expected a JSON object, got {_kind(item)}")
    out = dict(item)
    for name in task.profile_fields if task else ():
        label = f"{field}.{name}"
        answer = name == task.output_field and task.kind != "generation"  # a past rating or label: checked as one
        out[name] = as_text(require(item, name, where, label), where, label,
                            "any" if answer and task.kind == "rating" else "none")
        if answer:
            check_gold(task, out[name], where, label)
    if item.get("id") is not None:
        out["id"] = as_text(item["id"], where, f"{field}.id", "int", nonempty=True)
    if item.get("date") is not None:
        out["date"] = as_text(item["date"], where, f"{field}.date")
    return out


def check_profile(items: list[Any], path: str | Path, task: TaskSpec | None,
                  records: list[str] | None = None) -> list[dict[str, Any]]:
    """Validate a bare list of profile items (a user's history file) with the task's field rules.

    ``records`` names each item in errors (``line 3`` for JSON lines); by default its index and id.
    """
    def where(j: int, item: Any) -> Where:
        return Where(path, records[j] if records else _record(j, item.get("id") if isinstance(item, dict) else None))

    return [_profile_item(item, where(j, item), "item", task) for j, item in enumerate(items)]


def _question(obj: Any, index: int, path: Path, task: TaskSpec | None, seen: dict[str, int]) -> Example:
    where = Where(path, _record(index))
    if not isinstance(obj, dict):
        raise where.error(None, f"expected a JSON object, got {_kind(obj)}")
    qid = as_text(require(obj, "id", where), where, "id", "int", nonempty=True)
    where.record = _record(index, qid)
    if qid in seen:
        raise where.error("id", f"duplicate question id (first at record {seen[qid]})")
    seen[qid] = index
    text = as_text(require(obj, "input", where), where, "input", nonempty=True)
    profile = require(obj, "profile", where)
    if not isinstance(profile, list):
        raise where.error("profile", f"expected a list, got {_kind(profile)}")
    items = [_profile_item(item, where, f"profile[{j}]", task) for j, item in enumerate(profile)]
    user_id = None if obj.get("user_id") is None else as_text(obj["user_id"], where, "user_id", "int")
    date = None if obj.get("date") is None else as_text(obj["date"], where, "date")
    return Example(id=qid, input=text, profile=items, user_id=user_id, date=date)


def iter_questions(path: str | Path, task: TaskSpec | None = None) -> Iterator[Example]:
    """Stream the questions of a LaMP questions file, validating each record (never loads it whole)."""
    path, seen = Path(path), {}
    records = _stream(path, b"[", "a JSON list",
                      lambda handle: ijson.items(handle, "item", use_float=True))
    for index, obj in enumerate(records):
        yield _question(obj, index, path, task, seen)


def read_questions(path: str | Path, task: TaskSpec | None = None) -> list[Example]:
    return list(iter_questions(path, task))


def check_gold(task: TaskSpec, value: str, where: Where, field: str) -> None:
    """A gold must be one of a classification task's labels, or a number on a rating task's scale."""
    if task.kind == "generation" and not value.strip():
        raise where.error(field, "is empty; a generation task needs a reference text")
    if task.kind == "classification" and value.strip() not in task.labels:
        raise where.error(field, f"{one_line(value, 40)!r} is not a {task.name} label ({', '.join(task.labels)})")
    if task.kind == "rating":
        low, high = task.rating_range
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not low <= number <= high:
            raise where.error(field, f"{one_line(value, 40)!r} is not a rating from {low:g} to {high:g}")


def read_outputs(path: str | Path, task: TaskSpec | None = None) -> tuple[str, dict[str, str]]:
    """Read a LaMP outputs file: ``(task name, {question id: gold output})``; with ``task``, check the golds."""
    path = Path(path)
    top = dict(_stream(path, b"{", "a JSON object",
                       lambda h: ijson.kvitems(h, "", use_float=True), counted=False))
    where = Where(path)
    task_name = as_text(require(top, "task", where), where, "task", nonempty=True)
    golds = require(top, "golds", where)
    if not isinstance(golds, list):
        raise where.error("golds", f"expected a list, got {_kind(golds)}")
    if task is None:  # a known task named by the file itself is checked too
        from personalign.tasks import available_tasks, get_task

        task = get_task(task_name) if task_name in available_tasks() else None
    outputs: dict[str, str] = {}
    for index, gold in enumerate(golds):
        where.record = _record(index)
        if not isinstance(gold, dict):
            raise where.error(f"golds[{index}]", f"expected a JSON object, got {_kind(gold)}")
        gid = as_text(require(gold, "id", where, f"golds[{index}].id"), where, f"golds[{index}].id", "int", True)
        where.record = _record(index, gid)
        if gid in outputs:
            raise where.error(f"golds[{index}].id", "duplicate gold id")
        output = require(gold, "output", where, f"golds[{index}].output")
        outputs[gid] = as_text(output, where, f"golds[{index}].output", "any")
        if task is not None and task_name == task.name:
            check_gold(task, outputs[gid], where, f"golds[{index}].output")
    return task_name, outputs


@contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path``, on failure it is removed.

    The temporary file is ``.<name>.<pid>.<random>.tmp``: one left by a killed process (kill -9 between
    the first write and the rename) is removed by the next write of ``path``. A failed write (a full disk)
    names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    with naming(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        try:
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
                yield handle
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise


def remove_stale_temp_files(path: Path) -> None:
    """Remove the temporary files of ``path`` whose writer process is gone (it was killed mid-write)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        writer = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if writer.isdigit() and int(writer) != os.getpid():
            try:
                os.kill(int(writer), 0)
                continue  # still running: its file is in use
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        elif time.time() - tmp.stat().st_mtime < 3600:  # a writer that names no pid (older versions): wait an hour
            continue
        with suppress(OSError):
            tmp.unlink()


def _write_list(handle: IO[str], values: Iterable[Any]) -> None:
    handle.write("[")
    for index, value in enumerate(values):
        handle.write(", " if index else "")
        json.dump(value, handle, ensure_ascii=False)
    handle.write("]")


def _question_dict(example: Example) -> dict[str, Any]:
    out: dict[str, Any] = {"id": example.id, "input": example.input, "profile": example.profile}
    for key in ("user_id", "date"):
        if getattr(example, key) is not None:
            out[key] = getattr(example, key)
    return out


def write_questions(path: str | Path, examples: Iterable[Example]) -> None:
    """Write a LaMP questions file (official format, UTF-8, atomically)."""
    with atomic_writer(path) as handle:
        _write_list(handle, map(_question_dict, examples))
        handle.write("\n")


def write_outputs(path: str | Path, task_name: str, outputs: Iterable[tuple[str, str]], note: str | None = None) -> None:
    """Write a LaMP outputs file ``{"task", "golds"}`` from ``(id, output)`` pairs, atomically.

    ``note`` adds a ``"note"`` key, which LaMP's ``eval/evaluation.py`` ignores.
    """
    with atomic_writer(path) as handle:
        handle.write(f'{{"task": {json.dumps(task_name, ensure_ascii=False)}, ')
        if note:
            handle.write(f'"note": {json.dumps(note, ensure_ascii=False)}, ')
        handle.write('"golds": ')
        _write_list(handle, ({"id": qid, "output": output} for qid, output in outputs))
        handle.write("}\n")


def validate_files(paths: Iterable[str | Path], task: TaskSpec | None = None) -> list[str]:
    """Check questions and outputs files; a questions file and the outputs file beside it must match."""
    report, ids, gold_files = [], {}, {}
    for path in map(Path, paths):
        if path.name.endswith("outputs.json"):
            name, golds = read_outputs(path, task)
            if task is not None and name != task.name:
                raise DataError(str(path), None, "task", f"is {name!r} but expected {task.name!r}")
            gold_files[path.name.replace("outputs.json", "")] = (path, golds)
            report.append(f"{path}: ok ({len(golds)} golds, task {name})")
        else:
            found = [e.id for e in iter_questions(path, task)]
            if not found:
                raise DataError(str(path), None, None, "has no questions")
            ids[path.name.replace("questions.json", "")] = (path, found)
            report.append(f"{path}: ok ({len(found)} questions)")
    for prefix, (questions_path, found) in ids.items():
        if prefix in gold_files:
            outputs_path, golds = gold_files[prefix]
            missing = [(i, qid) for i, qid in enumerate(found) if qid not in golds]
            if missing:
                index, qid = missing[0]
                raise DataError(str(outputs_path), None, "golds", f"no gold output for question {_record(index, qid)} of "
                                f"{questions_path.name} ({len(missing)} missing)")
    return report


def find_split_files(data_dir: str | Path, task_name: str, split: str, part: str) -> tuple[Path, Path | None]:
    """Locate ``(questions, outputs or None)`` for a task's split ("user"/"time") and part."""
    if split not in SPLITS or part not in PARTS + CARVED_PARTS:
        raise ConfigError(f"bad split/part '{split}/{part}': split is one of {SPLITS}, part one of "
                          f"{PARTS + CARVED_PARTS}")
    part = "train" if part in CARVED_PARTS else part
    root = Path(data_dir) / task_name
    folders = [root / split, root / split / part] + ([root] if split == "user" else [])
    for folder in folders:
        questions = folder / f"{part}_questions.json"
        if questions.is_file():
            outputs = folder / f"{part}_outputs.json"
            return questions, outputs if outputs.is_file() else None
    tried = ", ".join(str(folder / f"{part}_questions.json") for folder in folders)
    raise DataError(str(root), None, None, f"no {split}-split {part} questions file; tried {tried}")


def load_split(data_dir: str | Path, task: TaskSpec, split: str,
               part: str) -> tuple[list[Example], dict[str, str] | None]:
    """Read a split's questions and (when present) its golds, checking they belong together.

    ``fit`` and ``val`` are the train questions of two disjoint sets of train users (``in_validation``).
    """
    questions_path, outputs_path = find_split_files(data_dir, task.name, split, part)
    examples = read_questions(questions_path, task)
    if part in CARVED_PARTS:
        examples = [e for e in examples if in_validation(e.user_id or e.id) == (part == "val")]
    if outputs_path is None:
        return examples, None
    task_name, golds = read_outputs(outputs_path, task)
    if task_name != task.name:
        raise DataError(str(outputs_path), None, "task", f"is {task_name!r} but expected {task.name!r}")
    for index, example in enumerate(examples):
        if example.id not in golds:
            raise DataError(str(outputs_path), None, "golds",
                            f"no gold output for question {_record(index, example.id)} of {questions_path.name}")
    if part in CARVED_PARTS:
        golds = {e.id: golds[e.id] for e in examples}
    return examples, golds


def in_validation(user: str) -> bool:
    """Is this train user in the validation part? A fixed hash of the user id: the same users in every run."""
    return int(hashlib.sha256(f"personalign-val:{user}".encode()).hexdigest()[:16], 16) / 16**16 < VAL_FRACTION


def training_part(part: str) -> str:
    """Where a method that learns from labelled users (population majority, RPO) may learn when scoring ``part``."""
    return "fit" if part == "val" else "train"


def files_sha256(paths: Iterable[str | Path]) -> str:
    """One SHA-256 over the bytes of the given files, in order (read in chunks)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise DataError(str(path), None, None, f"cannot read file: {one_line(exc.strerror or exc)}") from None
    return digest.hexdigest()
