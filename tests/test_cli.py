"""The command line as a user runs it: personalize, eval, report, data validate and error lines."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from personalign.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "personalign" / "data" / "examples"


def test_personalize_with_user_prior_prints_answer_and_trace(capsys, tmp_path):
    code = main(["personalize", "--history", str(EXAMPLES / "histories" / "harsh_hank.json"), "--method", "user-prior",
                 "--cache-dir", str(tmp_path), "--json", "Works, but the clip is cheap."])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "LaMP_3" and out["answer"] == "2.33"


def test_bad_history_file_gives_one_line_error(tmp_path, capsys):
    bad = tmp_path / "history.json"
    bad.write_text('[{"text": "ok", "score": "4"}, 5]')
    code = main(["personalize", "--history", str(bad), "--method", "user-prior", "--cache-dir", str(tmp_path), "q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert str(bad) in err and "record 1" in err
    bad.write_text('[{"text": "ok", "score": "4", "id": "a"}, {"text": "no score", "id": "b"}]')
    assert main(["personalize", "--history", str(bad), "--method", "user-prior", "--task", "LaMP_3", "q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "record 1 (id \"b\")" in err and "item.score" in err and "missing" in err


def test_eval_and_report_on_the_example_users(tmp_path, capsys):
    code = main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_3,LaMP_7", "--methods", "user-prior",
                 "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    assert "| user-prior |" in capsys.readouterr().out
    assert main(["report", "--runs", str(tmp_path / "runs"), "--task", "LaMP_3,LaMP_7"]) == 0
    table = capsys.readouterr().out
    assert "LaMP_3 mae ↓" in table and "LaMP_7 rouge-1 ↑" in table
    assert main(["report", "--runs", str(tmp_path / "runs"), "--task", "LaMP_3", "--methods", "zero-shot"]) == 0
    assert "| user-prior |" not in capsys.readouterr().out  # --methods keeps only the listed rows


def test_unknown_method_and_missing_data_are_one_line_errors(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path), "--task", "LaMP_3", "--methods", "user-prior",
                 "--out", str(tmp_path / "o")]) == 2
    assert "LaMP_3" in capsys.readouterr().err
    assert main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "nope",
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_data_validate_reports_counts(capsys):
    assert main(["data", "validate", str(EXAMPLES / "LaMP_3" / "user" / "dev_questions.json"),
                 str(EXAMPLES / "LaMP_3" / "user" / "dev_outputs.json"), "--task", "LaMP_3"]) == 0
    out = capsys.readouterr().out
    assert "3 questions" in out and "3 golds" in out


@pytest.mark.model
def test_personalize_rag_on_the_real_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "personalign.cli", "personalize", "--history", str(EXAMPLES / "histories" / "loud_lola.json"),
         "--method", "rag", "--cache-dir", str(tmp_path), "--json", "I am happy that the weekend is here."],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["task"] == "LaMP_7" and out["answer"].strip()
    assert len(out["trace"]["retrieved_ids"]) == 4 and out["trace"]["prompt_tokens"] > 50


def test_eval_config_fills_the_task_into_method_options():
    from personalign.cli import _for_task

    options = {"rpo@sft": {"reflection": "runs/rpo/{task}/sft/model.f16.gguf", "reflection_max_tokens": 128}}
    assert _for_task(options, "LaMP_5") == {"rpo@sft": {"reflection": "runs/rpo/LaMP_5/sft/model.f16.gguf",
                                                        "reflection_max_tokens": 128}}
    assert options["rpo@sft"]["reflection"].count("{task}") == 1  # the config itself is left alone
