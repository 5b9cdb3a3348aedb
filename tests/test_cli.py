"""The command line as a user runs it: personalize, eval, report, data validate and error lines."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from personalign.cli import main
from personalign.cli.eval import read_eval_config
from personalign.errors import ConfigError

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
    # a method with no run is an error naming the runs there are, never an empty table (issue 28)
    assert main(["report", "--runs", str(tmp_path / "runs"), "--task", "LaMP_3", "--methods", "zero-shot"]) == 2
    err = capsys.readouterr().err
    assert "zero-shot" in err and "have: user-prior" in err


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


def test_yaml_method_settings_survive_cli_defaults_and_unknown_keys_are_refused(tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_text("method_config: {k: 2, item_max_words: 9}\nseed: 3\n")
    out = tmp_path / "runs"
    assert main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "nearest-output", "--out", str(out),
                 "--config", str(config), "--cache-dir", str(tmp_path / "c")]) == 0
    key = json.loads((out / "LaMP_3" / "user-dev" / "predictions" / "nearest-output.key.json").read_text())
    assert key["method_config"]["k"] == 2 and key["method_config"]["item_max_words"] == 9 and key["seed"] == 3
    assert main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "nearest-output", "--out",
                 str(tmp_path / "runs2"), "--config", str(config), "--k", "5", "--cache-dir", str(tmp_path / "c")]) == 0
    key = json.loads((tmp_path / "runs2" / "LaMP_3" / "user-dev" / "predictions" / "nearest-output.key.json").read_text())
    assert key["method_config"]["k"] == 5 and key["method_config"]["item_max_words"] == 9  # the flag wins, the rest stays
    capsys.readouterr()
    config.write_text("method_config: {k: 2}\nmethods_options: {}\n")
    assert main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "user-prior", "--config", str(config),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: methods_options: unknown option; known: " in err and len(err.strip().splitlines()) == 1


def test_eval_config_inherits_and_overrides_one_option_of_a_row(tmp_path):
    (tmp_path / "rows.yaml").write_text("seed: 4\nmethod_options:\n  rpo@sft: {reflection: a.gguf, reflection_max_tokens: 128}\n")
    (tmp_path / "val.yaml").write_text("inherit: rows.yaml\nmethod_options:\n  rpo@sft: {reflection: b.gguf}\n")
    config = read_eval_config(str(tmp_path / "val.yaml"))
    assert config.seed == 4
    assert config.method_options == {"rpo@sft": {"reflection": "b.gguf", "reflection_max_tokens": 128}}
    (tmp_path / "rows.yaml").write_text("inherit: val.yaml\n")
    with pytest.raises(ConfigError, match="one level of inheritance only"):
        read_eval_config(str(tmp_path / "val.yaml"))


@pytest.mark.parametrize("argv, message", [
    (["--config", "/nonexistent/eval.yaml"], "cannot read"),
    (["--limit", "-1"], "--limit: Input should be greater than or equal to 1, got -1"),
    (["--limit", "0"], "--limit: Input should be greater than or equal to 1, got 0"),
    (["--k", "-1"], "--k: Input should be greater than or equal to 1, got -1"),
    (["--llm-options", "n_threads"], "expected key=value"),
    (["--profile-control", "someone"], "--profile-control: Input should be 'own', 'other-user' or 'none', got 'someone'"),
    (["--concurrency", "0"], "--concurrency: Input should be greater than or equal to 1, got 0"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, argv, message):
    code = main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "user-prior",
                 "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_unwritable_output_folder_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")  # fails for root too, unlike chmod
    code = main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "user-prior",
                 "--out", str(blocker / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(blocker) in err and len(err.splitlines()) == 1


def test_task_inference_refuses_to_guess_between_tasks_with_the_same_fields():
    from personalign.errors import ConfigError
    from personalign.tasks import get_task, infer_task

    papers = [{"title": "Parsing", "abstract": "We parse."}]
    with pytest.raises(ConfigError, match="fit LaMP_1, LaMP_5; pass --task"):
        infer_task(papers)
    assert infer_task(papers, get_task("LaMP_5").format_input("We parse more.")).name == "LaMP_5"
    mails = [{"title": "Lunch", "text": "Shall we?"}]
    with pytest.raises(ConfigError, match="fit LaMP_4, LaMP_6"):
        infer_task(mails)
    assert infer_task(mails, get_task("LaMP_6").format_input("Meeting at 3.")).name == "LaMP_6"
    assert infer_task([{"text": "a", "score": "4"}]).name == "LaMP_3"
    assert infer_task([{"text": "a tweet"}]).name == "LaMP_7"


def test_rescore_and_compare_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["eval", "--data", str(EXAMPLES), "--task", "LaMP_3", "--methods", "user-mean,user-median",
                 "--out", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["rescore", str(out)]) == 0
    assert "0 LLM calls" in capsys.readouterr().out
    assert main(["report", "--runs", str(out), "--task", "LaMP_3", "--compare", "user-mean,user-median"]) == 0
    table = capsys.readouterr().out
    assert "p (paired permutation)" in table and "| LaMP_3 | mae |" in table
    assert main(["report", "--runs", str(out), "--task", "LaMP_3", "--compare", "user-mean,nope"]) == 2
