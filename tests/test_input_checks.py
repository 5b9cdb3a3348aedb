"""Issue 28, items 5, 7, 8: bounded memory on deep nesting, JSONL histories, values that were accepted silently.

The CLI runs in a subprocess under an address-space cap (tests/robustness/run_cases.py), which reports
each case's exit code, stderr and peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from personalign.data.lamp_io import write_outputs
from personalign.tasks import get_task

RUN_CASES = Path(__file__).resolve().parent / "robustness" / "run_cases.py"
CAP = 2 << 30
LAMP3 = get_task("LaMP_3")


def run_cases(table: list[dict], tmp: Path, cap: int = CAP) -> dict[str, dict]:
    path = tmp / "cases.json"
    path.write_text(json.dumps(table))
    result = subprocess.run([sys.executable, str(RUN_CASES), str(path), str(cap)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return {o["name"]: o for o in map(json.loads, result.stdout.splitlines())}


def one_error(outcome: dict) -> str:
    assert outcome["code"] == 2, outcome
    lines = [line for line in outcome["stderr"].splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("personalign: error"), outcome["stderr"][-1500:]
    return lines[0]


def split(root: Path, questions: list[dict] | None = None, golds: list[tuple[str, str]] | None = None,
          task: str = "LaMP_3") -> Path:
    folder = root / task / "user"
    folder.mkdir(parents=True, exist_ok=True)
    spec = get_task(task)
    if questions is None:
        field = "score" if task == "LaMP_3" else None
        questions = [{"id": str(i), "input": spec.format_input(f"thing {i}"), "user_id": f"u{i}",
                      "profile": [{"text": f"old {i}", **({field: "4"} if field else {}), "id": f"{i}.0"}]}
                     for i in range(3)]
    (folder / "dev_questions.json").write_text(json.dumps(questions))
    write_outputs(folder / "dev_outputs.json", task, golds or [(str(i), "3" if task == "LaMP_3" else f"gold {i}")
                                                              for i in range(3)])
    return root


def eval_argv(root: Path, tmp: Path, task: str = "LaMP_3", method: str = "user-prior") -> list[str]:
    return ["eval", "--data", str(root), "--task", task, "--methods", method, "--out", str(tmp / "out"),
            "--cache-dir", str(tmp / "cache")]


# ------------------------------------------------------------------ item 5: nesting memory


def test_deep_nesting_costs_memory_bounded_by_the_file_size(tmp_path):
    deep = b"[" * 40_000 + b"]" * 40_000  # 80 KB: 3.95 GB peak before the fix
    deep_object = b'{"task": "LaMP_3", "golds": ' + b'{"a":' * 16_000 + b"1" + b"}" * 16_001
    quoted = json.dumps([{"id": "1", "input": "[" * 5000, "profile": []}]).encode()  # brackets in a string are text
    root = split(tmp_path / "small")
    table = [{"name": "baseline", "argv": ["data", "validate", str(root / "LaMP_3" / "user" / "dev_questions.json")]}]
    for name, content in (("list", deep), ("object", deep_object), ("quoted", quoted)):
        path = tmp_path / (f"deep_{name}.json" if name != "object" else "deep_outputs.json")
        path.write_bytes(content)
        table.append({"name": f"validate {name}", "argv": ["data", "validate", str(path)]})
    history = tmp_path / "deep_history.json"
    history.write_bytes(deep)
    table.append({"name": "personalize", "argv": ["personalize", "--history", str(history), "--task", "LaMP_3",
                                                  "--method", "user-prior", "--cache-dir", str(tmp_path / "c"), "q"]})
    records = tmp_path / "deep_records.jsonl"
    records.write_bytes(b'{"user_id": "u", "input": ' + deep + b"}\n")
    table.append({"name": "data build", "argv": ["data", "build", "--input", str(records), "--task", "LaMP_3",
                                                 "--out", str(tmp_path / "built")]})
    data = split(tmp_path / "deep")
    (data / "LaMP_3" / "user" / "dev_questions.json").write_bytes(deep)
    table.append({"name": "eval", "argv": eval_argv(data, tmp_path)})
    outcomes = run_cases(table, tmp_path)
    assert outcomes["baseline"]["code"] == 0
    assert outcomes["validate quoted"]["code"] == 0, outcomes["validate quoted"]["stderr"]
    for name in ("validate list", "validate object", "personalize", "eval"):
        line = one_error(outcomes[name])
        assert ".json" in line and "nested deeper than 32" in line, line
    assert "deep_records.jsonl" in one_error(outcomes["data build"])
    growth = {name: outcome["rss_growth"] for name, outcome in outcomes.items()}
    assert max(growth.values()) < 200 << 20, {name: value >> 20 for name, value in growth.items()}


# ------------------------------------------------------------------ item 7: JSONL histories


def test_a_jsonl_history_is_read_and_a_bad_line_is_named(tmp_path):
    from personalign.history import read_history

    good = tmp_path / "history.jsonl"
    good.write_text('{"text": "lovely strings", "score": "5"}\n\n{"text": "broke at once", "score": "1"}\n')
    assert [item["score"] for item in read_history(good)] == ["5", "1"]
    bad_json = tmp_path / "bad_json.jsonl"
    bad_json.write_text('{"text": "a", "score": "4"}\n{"text": "b", "score": "3"}\n{oops\n')
    not_item = tmp_path / "not_item.jsonl"
    not_item.write_text('{"text": "a", "score": "4"}\n[1, 2]\n')
    bad_field = tmp_path / "bad_field.jsonl"
    bad_field.write_text('{"text": "a", "score": "4"}\n\n\n{"text": "b", "score": "banana"}\n')
    table = [{"name": "good", "argv": ["personalize", "--history", str(good), "--method", "user-prior", "q"]}]
    for name, path in (("bad json", bad_json), ("not an item", not_item), ("bad field", bad_field)):
        table.append({"name": name, "argv": ["personalize", "--history", str(path), "--method", "user-prior",
                                             "--task", "LaMP_3", "q"]})
    outcomes = run_cases(table, tmp_path)
    assert outcomes["good"]["code"] == 0, outcomes["good"]["stderr"]
    for name, line_number in (("bad json", 3), ("not an item", 2), ("bad field", 4)):
        line = one_error(outcomes[name])
        assert f"line {line_number}" in line and "jsonl" in line, line


# ------------------------------------------------------------------ item 8: silently accepted values


def test_values_that_were_accepted_silently_are_one_line_errors(tmp_path):
    def question(**profile_item):
        return [{"id": "1", "input": LAMP3.format_input("x"), "profile": [{"text": "t", "score": "4", "id": "p0"},
                                                                         {"id": "p1", **profile_item}]}]

    cases = {
        "score banana": (split(tmp_path / "banana", question(text="t", score="banana")), "LaMP_3", "profile[1].score"),
        "score out of range": (split(tmp_path / "nine", question(text="t", score="9")), "LaMP_3", "profile[1].score"),
        "text a number": (split(tmp_path / "number", question(text=5, score="4")), "LaMP_3", "profile[1].text"),
        "empty gold": (split(tmp_path / "gold", golds=[("0", "a"), ("1", "  "), ("2", "c")], task="LaMP_7"),
                       "LaMP_7", "golds[1].output"),
    }
    table = []
    for name, (root, task, _) in cases.items():
        folder = root / task / "user"
        table.append({"name": f"{name} (validate)", "argv": ["data", "validate", "--task", task,
                                                             str(folder / "dev_questions.json"),
                                                             str(folder / "dev_outputs.json")]})
        table.append({"name": f"{name} (eval)", "argv": eval_argv(root, tmp_path / name.replace(" ", "-"), task,
                                                                 "user-prior" if task == "LaMP_3" else "echo")})
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"text": "fine", "score": "4"}, {"text": 12, "score": "3"}]))
    table.append({"name": "history text a number", "argv": ["personalize", "--history", str(history), "--task",
                                                            "LaMP_3", "--method", "user-prior", "q"]})
    outcomes = run_cases(table, tmp_path)
    for name, (root, task, field) in cases.items():
        for how in ("validate", "eval"):
            line = one_error(outcomes[f"{name} ({how})"])
            assert ".json" in line and ("record 1" in line or "record 0" in line), line
            assert f"field '{field}'" in line, line
    line = one_error(outcomes["history text a number"])
    assert "history.json" in line and "record 1" in line and "text" in line, line
