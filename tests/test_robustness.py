"""Malformed files, bad options and damaged state files, as a new user would meet them.

Every case must end in a correct run (exit 0) or a one-line error (exit 2) that names the file or
option; none may end in a traceback, and the whole table runs under a 3 GiB address-space cap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from personalign.data.lamp_io import write_outputs, write_questions
from personalign.tasks import get_task
from personalign.types import Example

HERE = Path(__file__).resolve().parent
MEMORY_CAP = 3 << 30
CASE_MEMORY = 128 << 20  # what one case's tiny (if malformed) files may add to the process's memory
LAMP3 = get_task("LaMP_3")


def good_split(root: Path, task: str = "LaMP_3") -> Path:
    folder = root / task / "user"
    folder.mkdir(parents=True, exist_ok=True)
    examples = [Example(id=str(i), input=LAMP3.format_input(f"item {i}"), user_id=f"u{i}",
                        profile=[{"text": f"old {i} {j}", "score": str(1 + j % 5), "id": f"{i}.{j}"} for j in range(3)])
                for i in range(4)]
    write_questions(folder / "dev_questions.json", examples)
    write_outputs(folder / "dev_outputs.json", task, [(str(i), str(1 + i)) for i in range(4)])
    return root


def cases(tmp: Path) -> list[dict]:
    """(name, argv, expected exit code or None for 'either 0 or 2')."""
    table: list[dict] = []

    def data_case(name: str, questions: bytes | None = None, outputs: bytes | None = None, expect: int | None = 2):
        root = good_split(tmp / name)
        folder = root / "LaMP_3" / "user"
        if questions is not None:
            (folder / "dev_questions.json").write_bytes(questions)
        if outputs is not None:
            (folder / "dev_outputs.json").write_bytes(outputs)
        table.append({"name": name, "expect": expect, "argv": ["eval", "--data", str(root), "--task", "LaMP_3",
                      "--methods", "user-prior", "--out", str(tmp / name / "out"), "--cache-dir", str(tmp / "cache")]})
        table.append({"name": name + " (validate)", "expect": expect, "argv": ["data", "validate", "--task", "LaMP_3",
                      str(folder / "dev_questions.json"), str(folder / "dev_outputs.json")]})

    good_q = json.loads((good_split(tmp / "template") / "LaMP_3" / "user" / "dev_questions.json").read_text())
    data_case("deeply nested list", b"[" * 200_000 + b"]" * 200_000)
    data_case("deeply nested profile", json.dumps([{**good_q[0], "profile": "X"}]).encode().replace(
        b'"X"', b"[" * 5000 + b"]" * 5000))
    data_case("empty file", b"")
    data_case("whitespace only", b"  \n ")
    data_case("top-level object", b'{"id": "1"}')
    data_case("not utf-8", b'[{"id": "1", "input": "\xff\xfe", "profile": []}]')
    data_case("truncated", json.dumps(good_q).encode()[:-20])
    data_case("empty list", b"[]")
    data_case("duplicate ids", json.dumps([good_q[0], good_q[0]]).encode())
    data_case("profile not a list", json.dumps([{**good_q[0], "profile": {"a": 1}}]).encode())
    data_case("score is a list", json.dumps([{**good_q[0], "profile": [{"text": "t", "score": [1]}]}]).encode())
    data_case("gold outside the labels", outputs=json.dumps({"task": "LaMP_3", "golds": [
        {"id": str(i), "output": "great"} for i in range(4)]}).encode())
    data_case("gold missing", outputs=json.dumps({"task": "LaMP_3", "golds": [{"id": "0", "output": "4"}]}).encode())
    data_case("outputs of another task", outputs=json.dumps({"task": "LaMP_2", "golds": []}).encode())
    data_case("outputs is a list", outputs=b"[]")
    data_case("bom and good content", b"\xef\xbb\xbf" + json.dumps(good_q).encode(), expect=0)

    deep_history = tmp / "deep_history.json"
    deep_history.write_text("[" * 1500 + "]" * 1500)
    for name, content in (("history nested 1500 deep", "[" * 1500 + "]" * 1500), ("history empty", ""),
                          ("history jsonl with a bad line", '{"text": "a", "score": "4"}\n{oops\n'),
                          ("history of numbers", "[1, 2, 3]")):
        path = tmp / f"{name}.json"
        path.write_text(content)
        table.append({"name": name, "expect": 2, "argv": ["personalize", "--history", str(path), "--method",
                      "user-prior", "--task", "LaMP_3", "--cache-dir", str(tmp / "cache"), "q"]})
    good_history = tmp / "good_history.json"
    good_history.write_text('[{"text": "fine", "score": "4"}]')
    for name, options in (("personalize unknown method option", "bogus=1"), ("personalize bad method options", "bogus")):
        table.append({"name": name, "expect": 2, "argv": ["personalize", "--history", str(good_history), "--method",
                      "user-prior", "--task", "LaMP_3", "--method-options", options, "--cache-dir", str(tmp / "cache"), "q"]})

    root = good_split(tmp / "options")
    base = ["eval", "--data", str(root), "--task", "LaMP_3", "--methods", "user-prior", "--out", str(tmp / "options" / "out")]
    bad_yaml, list_yaml = tmp / "bad.yaml", tmp / "list.yaml"
    bad_yaml.write_text("method: {k: [")
    list_yaml.write_text("- 1\n- 2\n")
    bad_method = tmp / "bad_method.yaml"
    bad_method.write_text("method: {k: many}\n")
    unknown_option = tmp / "unknown_option.yaml"
    unknown_option.write_text("method_options:\n  user-prior: {bogus: 1}\n")
    for name, extra in (("missing config", ["--config", str(tmp / "none.yaml")]), ("bad yaml", ["--config", str(bad_yaml)]),
                        ("yaml list", ["--config", str(list_yaml)]), ("yaml bad k", ["--config", str(bad_method)]),
                        ("unknown method option", ["--config", str(unknown_option)]),
                        ("limit -1", ["--limit", "-1"]), ("limit 0", ["--limit", "0"]), ("k -1", ["--k", "-1"]),
                        ("k not a number", ["--k", "x"]), ("llm options n_threads=abc", ["--llm-options", "n_threads=abc", "--methods", "zero-shot"]),
                        ("unknown method", ["--methods", "nope"]), ("unknown task", ["--task", "LaMP_9"]),
                        ("unknown retriever", ["--retriever", "nope"]), ("unknown backend", ["--llm", "nope", "--methods", "zero-shot"]),
                        ("openai without model", ["--llm", "openai", "--methods", "zero-shot"]),
                        ("workers for http", ["--llm", "openai:m", "--workers", "2", "--methods", "zero-shot"]),
                        ("bad control", ["--profile-control", "x"]), ("bad split", ["--split", "x"])):
        table.append({"name": name, "expect": 2, "argv": [*base, *extra]})

    state = good_split(tmp / "state")
    state_argv = ["eval", "--data", str(state), "--task", "LaMP_3", "--methods", "user-prior", "--out", str(tmp / "state" / "out"),
                  "--cache-dir", str(tmp / "state" / "cache")]
    table.append({"name": "first run (state)", "expect": 0, "argv": state_argv})
    table.append({"name": "zero-byte key file", "expect": 2, "argv": state_argv, "damage": "key"})
    table.append({"name": "non-object log row", "expect": 0, "argv": state_argv, "damage": "row"})
    cache = tmp / "damaged-cache"
    cache.mkdir()
    (cache / "llm.sqlite").write_bytes(b"garbage" * 1000)
    table.append({"name": "damaged sqlite cache", "expect": 2, "argv": [*base, "--methods", "zero-shot", "--llm", "openai:m",
                  "--llm-options", "base_url=http://127.0.0.1:9/v1", "--cache-dir", str(cache)]})
    return table


def run(table: list[dict], tmp: Path) -> list[dict]:
    path = tmp / "cases.json"
    path.write_text(json.dumps(table))
    result = subprocess.run([sys.executable, str(HERE / "robustness" / "run_cases.py"), str(path), str(MEMORY_CAP)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_malformed_files_options_and_state_give_one_line_errors_under_a_memory_cap(tmp_path):
    table = cases(tmp_path)
    first = [c for c in table if "damage" not in c]
    outcomes = run(first, tmp_path)
    log = tmp_path / "state" / "out" / "LaMP_3" / "user-dev" / "predictions" / "user-prior.jsonl"
    key = log.with_suffix(".key.json")
    saved = key.read_text()
    key.write_text("")  # a 0-byte file, as a non-atomic writer leaves it
    outcomes += run([c for c in table if c.get("damage") == "key"], tmp_path)
    key.write_text(saved)
    lines = log.read_text().splitlines()
    log.write_text("\n".join(["[1, 2, 3]", *lines[1:]]) + "\n")
    outcomes += run([c for c in table if c.get("damage") == "row"], tmp_path)
    assert len(json.loads("[" + ",".join(log.read_text().splitlines()[1:]) + "]")) == 4  # recomputed, nothing lost

    expected = {c["name"]: c["expect"] for c in table}
    problems = []
    for outcome in outcomes:
        err = [line for line in outcome["stderr"].splitlines() if line.startswith("personalign: error")]
        if outcome["code"] == "traceback" or "Traceback" in outcome["stderr"]:
            problems.append(f"{outcome['name']}: traceback\n{outcome['stderr'][-800:]}")
        elif outcome["code"] != expected[outcome["name"]] and expected[outcome["name"]] is not None:
            problems.append(f"{outcome['name']}: exit {outcome['code']}, expected {expected[outcome['name']]}: {outcome['stderr'][-300:]}")
        elif outcome["code"] == 2 and outcome["stderr"].strip() and len(err) > 1:
            problems.append(f"{outcome['name']}: more than one error line: {outcome['stderr']}")
    assert not problems, "\n".join(problems)
    assert {o["address_space_cap"] for o in outcomes} == {MEMORY_CAP}  # every case ran under the cap
    grew = {o["name"]: o["rss_growth"] >> 20 for o in outcomes if o["rss_growth"] > CASE_MEMORY}
    assert not grew, f"cases whose memory rose more than {CASE_MEMORY >> 20} MiB (MiB): {grew}"


@pytest.mark.parametrize("name", ["deeply nested list", "gold outside the labels", "not utf-8"])
def test_data_errors_name_the_file(tmp_path, name):
    table = [c for c in cases(tmp_path) if c["name"] == name]
    (outcome,) = run(table, tmp_path)
    assert outcome["code"] == 2 and "dev_" in outcome["stderr"] and ".json" in outcome["stderr"]
