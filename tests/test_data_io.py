"""Reading and writing official LaMP files: round trips, streaming, validation errors, layouts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from personalign.data.lamp_io import (
    files_sha256,
    find_split_files,
    iter_questions,
    load_split,
    read_outputs,
    read_questions,
    write_outputs,
    write_questions,
)
from personalign.errors import ConfigError, DataError
from personalign.tasks import get_task
from personalign.types import Example

LAMP3 = get_task("LaMP_3")


def question(i: int, n_items: int = 2) -> dict:
    """A valid LaMP_3 question record with id ``q{i}``."""
    items = [{"text": f"review {i}.{j}", "score": str(1 + j % 5), "id": f"p{i}.{j}"} for j in range(n_items)]
    return {"id": f"q{i}", "input": f"review: text {i}", "profile": items}


def dump(path: Path, value) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def assert_data_error(excinfo, path: Path, *parts: str) -> str:
    message = str(excinfo.value)
    assert len(message.splitlines()) == 1, message
    for part in (path.name, *parts):
        assert part in message, (part, message)
    return message


def test_questions_round_trip_is_official_json(tmp_path):
    examples = [
        Example(id="1", input="café ✓ review: x", profile=[{"text": "ünï", "score": "5", "id": "a"}],
                user_id="u1", date="2020-01-02"),
        Example(id="2", input="review: y", profile=[]),
    ]
    path = tmp_path / "dev_questions.json"
    write_questions(path, iter(examples))
    raw = path.read_bytes()
    assert "café ✓".encode() in raw  # ensure_ascii=False, UTF-8
    data = json.loads(raw)
    assert data[0] == {"id": "1", "input": "café ✓ review: x", "user_id": "u1", "date": "2020-01-02",
                       "profile": [{"text": "ünï", "score": "5", "id": "a"}]}
    assert set(data[1]) == {"id", "input", "profile"}  # None user_id/date omitted
    assert read_questions(path, LAMP3) == examples
    assert list(tmp_path.iterdir()) == [path]  # no temp file left


def test_outputs_round_trip(tmp_path):
    path = tmp_path / "dev_outputs.json"
    write_outputs(path, "LaMP_7", [("1", "4"), ("2", "élan")])
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "task": "LaMP_7", "golds": [{"id": "1", "output": "4"}, {"id": "2", "output": "élan"}]}
    assert read_outputs(path) == ("LaMP_7", {"1": "4", "2": "élan"})


@pytest.mark.parametrize("task, gold", [("LaMP_3", "élan"), ("LaMP_3", "7"), ("LaMP_3", "nan"), ("LaMP_2", "horror")])
def test_gold_outside_the_task_labels_is_refused(tmp_path, task, gold):
    path = tmp_path / "dev_outputs.json"
    write_outputs(path, task, [("1", "4" if task == "LaMP_3" else "comedy"), ("2", gold)])
    with pytest.raises(DataError, match=r"record 1 \(id \"2\"\): field 'golds\[1\]\.output'"):
        read_outputs(path)


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "q.json"
    write_questions(path, [Example(id="1", input="x")])
    before = path.read_bytes()

    def broken():
        yield Example(id="2", input="y")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_questions(path, broken())
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_streams_large_file_without_json_load(tmp_path, monkeypatch):
    path = tmp_path / "train_questions.json"
    write_questions(path, (Example(**question(i, 3)) for i in range(20000)))
    assert path.stat().st_size > 2_000_000

    def forbidden(*args, **kwargs):
        raise AssertionError("the reader must stream with ijson, not json.load")

    monkeypatch.setattr(json, "load", forbidden)
    monkeypatch.setattr(json, "loads", forbidden)
    count = sum(1 for _ in iter_questions(path, LAMP3))
    assert count == 20000
    # Truncate inside the last record: the first questions still stream out before the error.
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 30])
    stream = iter_questions(path, LAMP3)
    assert next(stream).id == "q0"
    with pytest.raises(DataError) as excinfo:
        for _ in stream:
            pass
    assert_data_error(excinfo, path, "record 19999", "malformed JSON")


def _mutate(record: dict, change) -> dict:
    record = json.loads(json.dumps(record))
    change(record)
    return record


BAD_QUESTIONS = [
    (lambda r: r.pop("id"), "record 1", "'id'", "missing"),
    (lambda r: r.update(id=""), "record 1", "'id'", "non-empty"),
    (lambda r: r.update(id=1.5), "record 1", "'id'", "got a number"),
    (lambda r: r.update(id=True), "record 1", "'id'", "got a boolean"),
    (lambda r: r.pop("input"), 'record 1 (id "q1")', "'input'", "missing"),
    (lambda r: r.update(input="  "), 'record 1 (id "q1")', "'input'", "non-empty"),
    (lambda r: r.update(input=3), 'record 1 (id "q1")', "'input'", "got a number"),
    (lambda r: r.pop("profile"), 'record 1 (id "q1")', "'profile'", "missing"),
    (lambda r: r.update(profile={"a": 1}), 'record 1 (id "q1")', "'profile'", "expected a list"),
    (lambda r: r["profile"].append("x"), 'record 1 (id "q1")', "'profile[2]'", "expected a JSON object"),
    (lambda r: r["profile"][1].pop("score"), 'record 1 (id "q1")', "'profile[1].score'", "missing"),
    (lambda r: r["profile"][1].update(score=None), 'record 1 (id "q1")', "'profile[1].score'", "got null"),
    (lambda r: r["profile"][1].update(score=[4]), 'record 1 (id "q1")', "'profile[1].score'", "got a list"),
    (lambda r: r["profile"][0].update(text={}), 'record 1 (id "q1")', "'profile[0].text'", "got an object"),
    (lambda r: r["profile"][0].update(id=[1]), 'record 1 (id "q1")', "'profile[0].id'", "got a list"),
    (lambda r: r.update(user_id=[1]), 'record 1 (id "q1")', "'user_id'", "got a list"),
    (lambda r: r.update(date=20200101), 'record 1 (id "q1")', "'date'", "got a number"),
    (lambda r: r.update(id="q0"), 'record 1 (id "q0")', "'id'", "duplicate question id (first at record 0)"),
]


@pytest.mark.parametrize("change,record,field,problem", BAD_QUESTIONS)
def test_question_validation_errors(tmp_path, change, record, field, problem):
    records = [question(0), _mutate(question(1), change), question(2)]
    path = dump(tmp_path / "dev_questions.json", records)
    with pytest.raises(DataError) as excinfo:
        read_questions(path, LAMP3)
    assert_data_error(excinfo, path, record, f"field {field}", problem)


def test_non_object_question(tmp_path):
    path = dump(tmp_path / "q.json", [question(0), ["not", "an", "object"]])
    with pytest.raises(DataError) as excinfo:
        read_questions(path)
    assert_data_error(excinfo, path, "record 1:", "expected a JSON object, got a list")


def test_numbers_are_accepted_as_text(tmp_path):
    record = question(0)
    record.update(id=7, user_id=12)
    record["profile"][0].update(score=4, id=99)
    path = dump(tmp_path / "q.json", [record])
    [example] = read_questions(path, LAMP3)
    assert (example.id, example.user_id) == ("7", "12")
    assert example.profile[0]["score"] == "4" and example.profile[0]["id"] == "99"


def test_profile_fields_checked_only_with_a_task(tmp_path):
    record = question(0)
    del record["profile"][0]["score"]
    path = dump(tmp_path / "q.json", [record])
    assert read_questions(path)[0].profile[0] == {"text": "review 0.0", "id": "p0.0"}
    with pytest.raises(DataError):
        read_questions(path, LAMP3)


@pytest.mark.parametrize("content,problem", [
    (b"", "file is empty"),
    (b"  \n ", "file is empty"),
    (b'{"id": "1"}', "top level must be a JSON list, found an object"),
    (b'"text"', "top level must be a JSON list, found a string"),
    (b'[{"id": "1", "input": "x", "profile": []}', "record 1: malformed JSON"),
    (b'[{"id": "1", "input": "x", "profile": []}] trailing', "malformed JSON"),
    (b'[{"id": "\xff\xfe", "input": "x", "profile": []}]', "malformed JSON"),
    (b"[{'id': 1}]", "record 0: malformed JSON"),
])
def test_malformed_question_files(tmp_path, content, problem):
    path = tmp_path / "train_questions.json"
    path.write_bytes(content)
    with pytest.raises(DataError) as excinfo:
        read_questions(path)
    assert_data_error(excinfo, path, problem)


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "q.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([question(0)]).encode())
    assert read_questions(path)[0].id == "q0"


def test_missing_file_and_directory_are_data_errors(tmp_path):
    for path, problem in ((tmp_path / "nope.json", "file not found"), (tmp_path, "cannot read file")):
        with pytest.raises(DataError) as excinfo:
            read_questions(path)
        assert_data_error(excinfo, path, problem)
        with pytest.raises(DataError):
            read_outputs(path)


@pytest.mark.parametrize("value,field,problem", [
    ([], None, "top level must be a JSON object, found a list"),
    ({"golds": []}, "'task'", "missing"),
    ({"task": 3, "golds": []}, "'task'", "expected a string"),
    ({"task": "LaMP_3"}, "'golds'", "missing"),
    ({"task": "LaMP_3", "golds": {}}, "'golds'", "expected a list"),
    ({"task": "LaMP_3", "golds": [{"id": "a", "output": "1"}, 5]}, "'golds[1]'", "expected a JSON object"),
    ({"task": "LaMP_3", "golds": [{"id": "a", "output": "1"}, {"id": "b"}]}, "'golds[1].output'", "missing"),
    ({"task": "LaMP_3", "golds": [{"id": "a", "output": "1"}, {"id": "b", "output": None}]},
     "'golds[1].output'", "got null"),
    ({"task": "LaMP_3", "golds": [{"id": "a", "output": "1"}, {"id": "a", "output": "2"}]},
     "'golds[1].id'", "duplicate gold id"),
])
def test_output_validation_errors(tmp_path, value, field, problem):
    path = dump(tmp_path / "dev_outputs.json", value)
    with pytest.raises(DataError) as excinfo:
        read_outputs(path)
    message = assert_data_error(excinfo, path, problem)
    if field:
        assert f"field {field}" in message
    if "golds[1]" in (field or ""):
        assert "record 1" in message


def test_output_numbers_become_text(tmp_path):
    path = dump(tmp_path / "o.json", {"task": "LaMP_3", "golds": [{"id": 5, "output": 4}]})
    assert read_outputs(path) == ("LaMP_3", {"5": "4"})


def _write_split(folder: Path, part: str, outputs: bool = True) -> None:
    write_questions(folder / f"{part}_questions.json", [Example(**question(0))])
    if outputs:
        write_outputs(folder / f"{part}_outputs.json", "LaMP_3", [("q0", "3")])


@pytest.mark.parametrize("layout", ["{task}/{split}", "{task}/{split}/{part}"])
def test_find_split_files_layouts(tmp_path, layout):
    for split in ("user", "time"):
        _write_split(tmp_path / layout.format(task="LaMP_3", split=split, part="dev"), "dev")
        questions, outputs = find_split_files(tmp_path, "LaMP_3", split, "dev")
        assert questions.parent == outputs.parent == tmp_path / layout.format(task="LaMP_3", split=split, part="dev")
        assert questions.name == "dev_questions.json" and outputs.name == "dev_outputs.json"


def test_find_split_files_flat_layout_is_user_split_only(tmp_path):
    _write_split(tmp_path / "LaMP_3", "test", outputs=False)
    assert find_split_files(tmp_path, "LaMP_3", "user", "test") == (tmp_path / "LaMP_3" / "test_questions.json", None)
    with pytest.raises(DataError) as excinfo:
        find_split_files(tmp_path, "LaMP_3", "time", "test")
    message = str(excinfo.value)
    assert "LaMP_3/time/test_questions.json" in message and "LaMP_3/time/test/test_questions.json" in message
    with pytest.raises(ConfigError):
        find_split_files(tmp_path, "LaMP_3", "random", "test")


def test_load_split_checks_golds(tmp_path):
    folder = tmp_path / "LaMP_3" / "user"
    write_questions(folder / "dev_questions.json", [Example(**question(0)), Example(**question(1))])
    write_outputs(folder / "dev_outputs.json", "LaMP_3", [("q0", "3"), ("q1", "5")])
    examples, golds = load_split(tmp_path, LAMP3, "user", "dev")
    assert [e.id for e in examples] == ["q0", "q1"] and golds == {"q0": "3", "q1": "5"}

    write_outputs(folder / "dev_outputs.json", "LaMP_3", [("q0", "3")])
    with pytest.raises(DataError) as excinfo:
        load_split(tmp_path, LAMP3, "user", "dev")
    assert_data_error(excinfo, folder / "dev_outputs.json", 'id "q1"', "dev_questions.json")

    write_outputs(folder / "dev_outputs.json", "LaMP_2", [("q0", "3"), ("q1", "5")])
    with pytest.raises(DataError) as excinfo:
        load_split(tmp_path, LAMP3, "user", "dev")
    assert_data_error(excinfo, folder / "dev_outputs.json", "field 'task'", "LaMP_2", "LaMP_3")


def test_load_split_without_outputs(tmp_path):
    _write_split(tmp_path / "LaMP_3" / "user", "test", outputs=False)
    examples, golds = load_split(tmp_path, LAMP3, "user", "test")
    assert len(examples) == 1 and golds is None


def test_files_sha256(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_bytes(b"hello " * 300_000)
    second.write_bytes(b"world")
    digest = files_sha256([first, second])
    assert digest == hashlib.sha256(first.read_bytes() + second.read_bytes()).hexdigest()
    data = bytearray(first.read_bytes())
    data[1_000_000] ^= 1
    first.write_bytes(bytes(data))
    assert files_sha256([first, second]) != digest
    with pytest.raises(DataError):
        files_sha256([tmp_path / "missing.json"])


def test_validation_users_are_carved_out_of_the_train_users_disjointly_and_reproducibly(tmp_path):
    from personalign.data.build import build_benchmark
    from personalign.data.lamp_io import load_split

    task = get_task("LaMP_3")
    records = [{"user_id": f"u{u}", "input": f"review {u} {k}", "output": str(1 + (u + k) % 5),
                "timestamp": f"2020-01-0{k + 1}"} for u in range(200) for k in range(3)]
    source = tmp_path / "records.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    build_benchmark(source, task, tmp_path / "data", dev_frac=0, test_frac=0, questions_per_user=2)
    train, _ = load_split(tmp_path / "data", task, "user", "train")
    fit, fit_golds = load_split(tmp_path / "data", task, "user", "fit")
    val, val_golds = load_split(tmp_path / "data", task, "user", "val")
    fit_users, val_users = {e.user_id for e in fit}, {e.user_id for e in val}
    assert not fit_users & val_users and len(fit) + len(val) == len(train)  # by user, nothing lost
    assert 0.1 < len(val_users) / 200 < 0.3 and set(val_golds) == {e.id for e in val}
    assert [e.id for e in load_split(tmp_path / "data", task, "user", "val")[0]] == [e.id for e in val]
    with pytest.raises(ConfigError, match="part one of"):
        load_split(tmp_path / "data", task, "user", "validation")
