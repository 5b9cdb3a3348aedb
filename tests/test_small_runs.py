"""Review finding: below MIN_QUESTIONS_FOR_TESTS questions, every table (eval, report, results.md) shows
values only, with one note why; at RealLaMP size the intervals and paired tests are still there.

The LLM rows come from the FAKE backend in tests/fakes.py (orchestration only, never reported numbers).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fakes import FakeHashLLM

from personalign.cli import main
from personalign.data.lamp_io import write_outputs, write_questions
from personalign.eval.report import MIN_QUESTIONS_FOR_TESTS
from personalign.eval.runner import EvalConfig, run_eval
from personalign.tasks import get_task
from personalign.types import Example

LAMP3 = get_task("LaMP_3")
INTERVAL = re.compile(r"\[\d+\.\d{3}, \d+\.\d{3}\]")
NOTE = "too few for intervals or significance tests"
VERDICTS = ("verdict", "permutation", "no significant difference", "reads the user", "beats", "loses to")


def finished_run(root: Path, n: int) -> Path:
    """A LaMP_3 run of n questions: references, a (fake) LLM method and a profile control."""
    folder = root / "data" / "LaMP_3" / "user"
    folder.mkdir(parents=True)
    write_questions(folder / "dev_questions.json", [
        Example(id=str(i), input=LAMP3.format_input(f"product {i}"), user_id=f"u{i}",
                profile=[{"text": f"item {i} {j}", "score": str(1 + (i + j) % 5), "id": f"{i}-{j}"} for j in range(3)])
        for i in range(n)])
    write_outputs(folder / "dev_outputs.json", "LaMP_3", [(str(i), str(1 + i % 5)) for i in range(n)])
    config = EvalConfig(data=str(root / "data"), task="LaMP_3", methods=["user-mean", "user-median", "zero-shot"],
                        out=str(root / "runs"), cache_dir=str(root / "cache"), profile_controls=["own", "none"])
    run_eval(config, llm=FakeHashLLM(["3"]))
    return config.run_dir


def test_report_and_results_md_of_two_questions_show_values_only_with_the_note(tmp_path, capsys):
    run_dir = finished_run(tmp_path, 2)
    capsys.readouterr()
    assert main(["report", "--runs", str(tmp_path / "runs"), "--task", "LaMP_3"]) == 0
    out = capsys.readouterr().out
    assert out.count(NOTE) == 1 and "n = 2 questions" in out
    assert "| user-mean | " in out and "| zero-shot#none | " in out  # the values are there
    assert not INTERVAL.search(out), out
    assert not any(word in out for word in VERDICTS), out
    written = (run_dir / "results.md").read_text()
    assert NOTE in written and "| zero-shot | " in written
    assert not INTERVAL.search(written) and not any(word in written for word in VERDICTS), written


@pytest.mark.parametrize("n", [MIN_QUESTIONS_FOR_TESTS])
def test_a_run_at_the_threshold_keeps_intervals_and_paired_tests(tmp_path, capsys, n):
    run_dir = finished_run(tmp_path, n)
    capsys.readouterr()
    assert main(["report", "--runs", str(tmp_path / "runs"), "--task", "LaMP_3"]) == 0
    out = capsys.readouterr().out
    assert NOTE not in out and INTERVAL.search(out)
    assert "verdict" in out and "reads the user" in out
    written = (run_dir / "results.md").read_text()
    assert NOTE not in written and INTERVAL.search(written) and "verdict" in written
