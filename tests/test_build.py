"""Building LaMP-format user and time splits from per-user JSONL records."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from personalign.data.build import build_benchmark
from personalign.data.lamp_io import files_sha256, load_split
from personalign.errors import ConfigError, DataError
from personalign.tasks import get_task

LAMP3, LAMP7 = get_task("LaMP_3"), get_task("LaMP_7")
PARTS = ("train", "dev", "test")


def make_records(n_users: int = 30, per_user: int = 5) -> list[dict]:
    """Records of several users, each with distinct daily timestamps, written in shuffled order."""
    records = [
        {"user_id": f"user{u}", "id": f"r{u}-{k}", "input": f"review {u}-{k} was fine", "output": 1 + (u + k) % 5,
         "timestamp": f"2021-03-{10 + k:02d}T12:00:00Z"}
        for u in range(n_users) for k in range(per_user)
    ]
    random.Random(7).shuffle(records)
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def load_all(out: Path, task, split: str) -> dict[str, tuple[list, dict]]:
    return {part: load_split(out, task, split, part) for part in PARTS}


@pytest.fixture
def built(tmp_path):
    records = make_records()
    source = write_jsonl(tmp_path / "records.jsonl", records)
    counts = build_benchmark(source, LAMP3, tmp_path / "out", seed=0)
    return records, counts, tmp_path / "out"


def test_user_split_puts_each_user_in_one_part(built):
    records, counts, out = built
    parts = load_all(out, LAMP3, "user")
    users_by_part = {part: [e.user_id for e in examples] for part, (examples, _) in parts.items()}
    all_users = [u for users in users_by_part.values() for u in users]
    assert sorted(all_users) == sorted({r["user_id"] for r in records})  # each user exactly once
    assert all(users_by_part[part] for part in PARTS)  # 30 users fill all three parts
    assert counts["user"] == {part: len(users) for part, users in users_by_part.items()}


def test_questions_are_latest_records_with_earlier_profiles(built):
    records, _, out = built
    by_id = {r["id"]: r for r in records}
    for examples, golds in load_all(out, LAMP3, "user").values():
        for example in examples:
            query = by_id[example.id]
            assert example.id.endswith("-4")  # each user's latest record
            assert example.input == LAMP3.format_input(query["input"]) and example.input.startswith("What is the score")
            assert golds[example.id] == str(query["output"])
            assert example.date == query["timestamp"]
            profile_ids = [item["id"] for item in example.profile]
            assert example.id not in profile_ids and len(profile_ids) == 4
            assert all(item["date"] < example.date for item in example.profile)
            assert [item["date"] for item in example.profile] == sorted(item["date"] for item in example.profile)
            item = example.profile[0]
            assert item == {"text": by_id[item["id"]]["input"], "score": str(by_id[item["id"]]["output"]),
                            "id": item["id"], "date": by_id[item["id"]]["timestamp"]}


def test_time_split_latest_to_test(built):
    _, counts, out = built
    parts = load_all(out, LAMP3, "time")
    expected = {"test": "-4", "dev": "-3", "train": "-2"}
    for part, (examples, _) in parts.items():
        assert len(examples) == 30 == counts["time"][part]
        for example in examples:
            assert example.id.endswith(expected[part])
            assert len(example.profile) == int(expected[part][1:])
            assert all(item["date"] < example.date for item in example.profile)
            assert example.id not in {item["id"] for item in example.profile}


def digest(root: Path) -> str:
    return files_sha256(sorted(root.rglob("*.json")))


def test_deterministic_per_seed(tmp_path, built):
    records, _, out = built
    source = write_jsonl(tmp_path / "again.jsonl", records)
    build_benchmark(source, LAMP3, tmp_path / "same", seed=0)
    assert digest(tmp_path / "same") == digest(out)
    build_benchmark(source, LAMP3, tmp_path / "other", seed=1)
    assert digest(tmp_path / "other" / "LaMP_3" / "user") != digest(out / "LaMP_3" / "user")
    assert digest(tmp_path / "other" / "LaMP_3" / "time") == digest(out / "LaMP_3" / "time")


def test_profile_limits_and_ties(tmp_path):
    records = [{"user_id": "a", "input": f"t{k}", "output": "3", "timestamp": f"2020-01-0{k + 1}"} for k in range(6)]
    records += [{"user_id": "b", "input": "only one", "output": "2", "timestamp": "2020-01-01"}]
    records += [{"user_id": "c", "input": f"same day {k}", "output": "4", "timestamp": "2020-02-02"} for k in range(3)]
    source = write_jsonl(tmp_path / "r.jsonl", records)
    counts = build_benchmark(source, LAMP3, tmp_path / "out", dev_frac=0, test_frac=0, min_profile=2, max_profile=3)
    [example], golds = load_split(tmp_path / "out", LAMP3, "user", "train")  # b: no history; c: only ties
    assert example.user_id == "a" and example.id == "a-5" and golds == {"a-5": "3"}
    assert [item["text"] for item in example.profile] == ["t2", "t3", "t4"]  # most recent 3, oldest first
    assert counts["time"] == {"test": 1, "dev": 1, "train": 1}


def test_questions_per_user_gives_train_users_several_questions_with_strictly_earlier_profiles(tmp_path):
    records = [{"user_id": u, "input": f"{u}{k}", "output": "3", "timestamp": f"2020-01-0{k + 1}"}
               for u in ("a", "b") for k in range(4)]
    source = write_jsonl(tmp_path / "r.jsonl", records)
    counts = build_benchmark(source, LAMP3, tmp_path / "out", dev_frac=0, test_frac=0, questions_per_user=3)
    examples, golds = load_split(tmp_path / "out", LAMP3, "user", "train")
    assert counts["user"]["train"] == 6 and len(golds) == 6
    for example in examples:
        own = int(example.input[-1])
        assert [item["text"] for item in example.profile] == [f"{example.user_id}{k}" for k in range(own)]
    assert sorted(int(e.input[-1]) for e in examples if e.user_id == "a") == [1, 2, 3]  # the first has no history
    with pytest.raises(ConfigError):
        build_benchmark(source, LAMP3, tmp_path / "bad", questions_per_user=0)


def test_lamp7_profile_text_comes_from_output_and_undated_keep_file_order(tmp_path):
    records = [{"user_id": 9, "input": f"paraphrase {k}", "output": f"tweet {k}"} for k in range(3)]
    source = write_jsonl(tmp_path / "tweets.jsonl", records)
    build_benchmark(source, LAMP7, tmp_path / "out", dev_frac=0, test_frac=1)
    [example], golds = load_split(tmp_path / "out", LAMP7, "user", "test")
    assert example.id == "9-2" and example.user_id == "9" and example.date is None
    assert example.input == LAMP7.format_input("paraphrase 2") and golds == {"9-2": "tweet 2"}
    assert example.profile == [{"text": "tweet 0", "id": "9-0"}, {"text": "tweet 1", "id": "9-1"}]


@pytest.mark.parametrize("line,field,problem", [
    ({"input": "x", "output": "1"}, "user_id", "missing"),
    ({"user_id": "u", "output": "1"}, "input", "missing"),
    ({"user_id": "u", "input": "x"}, "output", "missing"),
    ({"user_id": ["u"], "input": "x", "output": "1"}, "user_id", "got a list"),
    ({"user_id": "u", "input": "x", "output": "1", "timestamp": 5}, "timestamp", "got a number"),
    ({"user_id": "u", "input": "x", "output": "1", "score": None, "text": {}}, "text", "got an object"),
    ({"user_id": "u", "input": "x", "output": "1", "id": "r0-0"}, "id", "duplicate id"),
])
def test_bad_line_names_file_line_and_field(tmp_path, line, field, problem):
    good = make_records(1, 2)
    source = write_jsonl(tmp_path / "bad.jsonl", good + [line])
    source.write_text(source.read_text().replace(json.dumps(good[1]), json.dumps(good[1]) + "\n"))  # blank line 3
    with pytest.raises(DataError) as excinfo:
        build_benchmark(source, LAMP3, tmp_path / "out")
    message = str(excinfo.value)
    assert len(message.splitlines()) == 1
    assert "bad.jsonl" in message and "line 4" in message and f"field '{field}'" in message and problem in message


def test_bad_json_line_and_options(tmp_path):
    source = tmp_path / "broken.jsonl"
    source.write_text('{"user_id": "u", "input": "x", "output": "1"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl: record at line 2: invalid JSON"):
        build_benchmark(source, LAMP3, tmp_path / "out")
    with pytest.raises(DataError, match=r"missing\.jsonl: file not found"):
        build_benchmark(tmp_path / "missing.jsonl", LAMP3, tmp_path / "out")
    with pytest.raises(ConfigError):
        build_benchmark(source, LAMP3, tmp_path / "out", dev_frac=0.7, test_frac=0.5)
