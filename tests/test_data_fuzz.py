"""Fuzzing the LaMP readers: bad content either loads or raises a one-line DataError naming the file."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalign.data.lamp_io import read_outputs, read_questions
from personalign.errors import DataError
from personalign.tasks import get_task

LAMP3 = get_task("LaMP_3")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = ["id", "input", "profile", "user_id", "date", "text", "score", "task", "golds", "output"]

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)
raw_bytes = st.binary(max_size=400) | st.builds(lambda tail: b'[{"id": "1", "input": ' + tail, st.binary(max_size=200))

VALID_QUESTIONS = [
    {"id": str(i), "input": f"review: good {i} ✓", "user_id": f"u{i}", "date": "2020-01-0" + str(i + 1),
     "profile": [{"text": f"nice {i}.{j}", "score": str(j + 1), "id": f"{i}.{j}"} for j in range(3)]}
    for i in range(3)
]
VALID_OUTPUTS = {"task": "LaMP_3", "golds": [{"id": str(i), "output": str(i + 2)} for i in range(3)]}
READERS: list[Callable[[Path], object]] = [read_questions, lambda p: read_questions(p, LAMP3), read_outputs]


def check_readers(content: bytes, readers=READERS) -> None:
    """Every reader either loads ``content`` or raises a one-line DataError naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz_questions.json"
        path.write_bytes(content)
        for reader in readers:
            try:
                reader(path)
            except DataError as exc:
                message = str(exc)
                assert len(message.splitlines()) == 1, message
                assert path.name in message, message


def containers(value, trail=()):
    """Every (path, container) pair inside a JSON value, the value itself first."""
    if isinstance(value, (dict, list)):
        yield trail, value
        keys = value.keys() if isinstance(value, dict) else range(len(value))
        for key in keys:
            yield from containers(value[key], trail + (key,))


def mutate(data: st.DataObject, document) -> bytes:
    """Apply one random mutation to a copy of a valid document: drop a key, change a type, or truncate."""
    document = json.loads(json.dumps(document))
    kind = data.draw(st.sampled_from(["drop", "retype", "truncate"]))
    if kind == "truncate":
        text = json.dumps(document, ensure_ascii=False).encode()
        return text[: data.draw(st.integers(0, len(text) - 1))]
    spots = list(containers(document))
    _, target = data.draw(st.sampled_from(spots))
    if not target:
        return json.dumps(document).encode()
    key = data.draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
    if kind == "drop":
        del target[key]
    else:
        target[key] = data.draw(json_values)
    return json.dumps(document, ensure_ascii=False).encode()


@FUZZ
@given(raw_bytes)
def test_arbitrary_bytes(content):
    check_readers(content)


@FUZZ
@given(json_values)
def test_arbitrary_json_values(value):
    check_readers(json.dumps(value).encode())


@FUZZ
@given(st.data())
def test_mutated_questions_file(data):
    check_readers(mutate(data, VALID_QUESTIONS), READERS[:2])


@FUZZ
@given(st.data())
def test_mutated_outputs_file(data):
    check_readers(mutate(data, VALID_OUTPUTS), READERS[2:])


def test_unmutated_files_load():
    with tempfile.TemporaryDirectory() as folder:
        questions, outputs = Path(folder) / "q.json", Path(folder) / "o.json"
        questions.write_text(json.dumps(VALID_QUESTIONS), encoding="utf-8")
        outputs.write_text(json.dumps(VALID_OUTPUTS), encoding="utf-8")
        assert [e.id for e in read_questions(questions, LAMP3)] == ["0", "1", "2"]
        assert read_outputs(outputs) == ("LaMP_3", {"0": "2", "1": "3", "2": "4"})
