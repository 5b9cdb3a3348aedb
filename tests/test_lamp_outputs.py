"""The outputs files a run writes (issue 28, 1b): what LaMP's scorer receives, and the lenient parses, by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeHashLLM

from personalign.data.lamp_io import write_outputs, write_questions
from personalign.engine.predictions import PredictionLog
from personalign.eval.rescore import score_run
from personalign.eval.runner import EvalConfig, run_eval
from personalign.tasks import get_task
from personalign.tasks.metrics import compute_metrics
from personalign.types import Example

# raw completions where the lenient parser and LaMP's strip() disagree, and some where they agree
RATING_ROWS = [("a", "1. 5 is the score", "5"), ("b", "4", "4"), ("c", "Score: 2", "2"), ("d", "1. 1\n2. 2", "3"),
               ("e", "I think 4", "4"), ("f", "3", "1")]
TAG_ROWS = [("a", "Tag: comedy", "comedy"), ("b", "action", "action"), ("c", "not comedy but action", "action"),
            ("d", "romance", "comedy")]


def lamp_script(outputs_path: Path, golds: dict[str, str]) -> dict[str, float]:
    """LaMP's eval/evaluation.py in miniature: every gold id must be predicted; outputs are only stripped."""
    data = json.loads(outputs_path.read_text(encoding="utf-8"))
    task = get_task(data["task"])
    preds = {g["id"]: g["output"] for g in data["golds"]}
    assert set(preds) == set(golds), "Predictions ids and gold ids do not match"
    ids = sorted(golds)
    return compute_metrics(task, [preds[i].strip() for i in ids], [golds[i] for i in ids])


def write_run(run_dir: Path, task_name: str, rows, limit: int | None = None) -> dict[str, str]:
    key = {"task": task_name, "method": "zero-shot", "limit": limit}
    with PredictionLog(run_dir / "predictions" / "zero-shot.jsonl", key=key) as log:
        for qid, raw, gold in rows:
            log.append({"id": qid, "gold": gold, "raw": raw, "filter": "plain", "trace": {}})
    return {qid: gold for qid, _, gold in rows}


@pytest.mark.parametrize("task_name,rows", [("LaMP_3", RATING_ROWS), ("LaMP_2", TAG_ROWS)])
def test_lamp_outputs_file_reproduces_the_official_column_and_not_the_lenient_one(tmp_path, task_name, rows):
    golds = write_run(tmp_path, task_name, rows)
    metrics = score_run(tmp_path)["zero-shot"]
    metric = get_task(task_name).metrics[0]
    from_lamp_file = lamp_script(tmp_path / "zero-shot_lamp_outputs.json", golds)
    from_lenient_file = lamp_script(tmp_path / "zero-shot_lenient_predictions.json", golds)
    assert from_lamp_file[metric] == pytest.approx(metrics["official"][metric])
    assert from_lenient_file[metric] == pytest.approx(metrics["lenient"][metric])
    assert from_lamp_file[metric] != pytest.approx(from_lenient_file[metric])  # these rows tell the modes apart
    assert not (tmp_path / "zero-shot_outputs.json").exists()


def test_lenient_rating_reads_the_list_item_and_counts_the_options_as_unparsable(tmp_path):
    write_run(tmp_path, "LaMP_3", RATING_ROWS)
    metrics = score_run(tmp_path)["zero-shot"]
    lenient = json.loads((tmp_path / "zero-shot_lenient_predictions.json").read_text())["golds"]
    assert [g["output"] for g in lenient] == ["5", "4", "2", "1. 1\n2. 2", "4", "3"]
    assert metrics["unparsable_rate"] == pytest.approx(1 / 6)
    # errors 0, 0, 0, 2 (unparsable: the far end of the scale from 3), 0, 2
    assert metrics["lenient"]["mae"] == pytest.approx(4 / 6)
    assert "unparsable_rate" in (tmp_path / "results.md").read_text()


def test_rescoring_removes_the_old_misnamed_outputs_file(tmp_path, capsys):
    write_run(tmp_path, "LaMP_3", RATING_ROWS)
    (tmp_path / "zero-shot_outputs.json").write_text('{"task": "LaMP_3", "golds": []}')
    score_run(tmp_path)
    assert not (tmp_path / "zero-shot_outputs.json").exists()
    assert "zero-shot_outputs.json" in capsys.readouterr().err


def test_a_limit_run_says_lamps_script_cannot_score_its_file(tmp_path, capsys):
    task = get_task("LaMP_3")
    folder = tmp_path / "data" / "LaMP_3" / "user"
    folder.mkdir(parents=True)
    profile = [{"text": "fine", "score": "4", "id": "p"}]
    write_questions(folder / "dev_questions.json", [Example(id=str(i), input=task.format_input(f"product {i}"),
                                                           profile=profile, user_id=f"u{i}") for i in range(6)])
    write_outputs(folder / "dev_outputs.json", "LaMP_3", [(str(i), "4") for i in range(6)])
    config = EvalConfig(data=str(tmp_path / "data"), task="LaMP_3", methods=["zero-shot"], out=str(tmp_path / "out"),
                        cache_dir=str(tmp_path / "cache"), limit=3)
    run_eval(config, llm=FakeHashLLM(["4", "Score: 2"]))
    err = capsys.readouterr().err
    lamp_file = config.run_dir / "zero-shot_lamp_outputs.json"
    assert f"{lamp_file}: made with --limit 3" in err and "requires every gold id, cannot score it" in err
    data = json.loads(lamp_file.read_text())
    assert "cannot score it" in data["note"] and len(data["golds"]) == 3


def test_a_full_run_has_no_limit_note(tmp_path, capsys):
    write_run(tmp_path, "LaMP_3", RATING_ROWS)
    score_run(tmp_path)
    assert "note" not in json.loads((tmp_path / "zero-shot_lamp_outputs.json").read_text())
    assert "cannot score" not in capsys.readouterr().err
