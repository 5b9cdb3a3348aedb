"""docs/results.md is generated from the committed per-example scores (docs/scores/) and nothing else.

- the committed page equals what `personalign results page` makes from the committed scores, byte for byte;
- a changed score changes the page (so that equality can fail);
- the scores files hold question ids, numbers, row names and settings only: never data text;
- an export reproduces the run's own metrics.json (values and intervals), and refuses text where an id goes.

The LLM rows of the export test come from the FAKE backend in tests/fakes.py (orchestration only).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from fakes import FakeHashLLM

from personalign.cli import main
from personalign.data.lamp_io import find_split_files, read_outputs, write_outputs, write_questions
from personalign.errors import ConfigError
from personalign.eval.results_page import build_page
from personalign.eval.runner import EvalConfig, run_eval
from personalign.eval.scores import check_scores, export_run, load_scores
from personalign.eval.task_scores import score_file
from personalign.methods import base_name
from personalign.tasks import get_task
from personalign.types import Example

ROOT = Path(__file__).resolve().parent.parent
SCORES = ROOT / "docs" / "scores"
PAGE = ROOT / "docs" / "results.md"
DATA = ROOT.parent / "shared" / "data" / "reallamp"
SCORE_FILES = sorted(SCORES.glob("*.json"))


def test_the_committed_page_is_what_the_committed_scores_make(tmp_path, monkeypatch):
    assert SCORE_FILES, "docs/scores/ holds no scores files"
    monkeypatch.chdir(SCORES.parent.parent)  # the page cites the scores folder relative to the working directory
    out = tmp_path / "results.md"
    assert main(["results", "page", "--scores", str(SCORES), "--out", str(out)]) == 0
    assert out.read_bytes() == PAGE.read_bytes(), (
        "docs/results.md differs from the committed scores: run "
        "`personalign results page --scores docs/scores --out docs/results.md`")


def test_the_page_states_the_finding_and_where_the_scores_came_from():
    page = PAGE.read_text()
    assert "No LLM method beats its task's strongest non-LLM reference" in page
    assert "personalign results page --scores docs/scores --out docs/results.md" in page
    assert "personalign eval --data" in page and "SmolLM2-135M-Instruct" in page
    assert "archive/results-2026-12.md" in page and (ROOT / "docs" / "archive" / "results-2026-12.md").is_file()


def test_a_changed_score_changes_the_page(tmp_path):
    """Make LaMP_3's zero-shot perfect: its row, its verdict and the headline must all change."""
    original, changed = tmp_path / "original", tmp_path / "changed"
    original.mkdir(), changed.mkdir()
    shutil.copy(SCORES / "LaMP_3-user-dev.json", original)
    scores = json.loads((SCORES / "LaMP_3-user-dev.json").read_text())
    scores["rows"]["zero-shot"]["lenient"]["error"] = [0 for _ in scores["ids"]]
    (changed / "LaMP_3-user-dev.json").write_text(json.dumps(scores))
    before, after = build_page(original), build_page(changed)
    assert before != after
    assert "| zero-shot | LLM | 3.1732 [" in before and "| zero-shot | LLM | 0.0000 [0.000, 0.000]" in after
    assert "| zero-shot | 0.0000 | 0.4058 |" in after and "beats tfidf-linear" in after
    assert "No LLM method beats" in before and "No LLM method beats" not in after
    assert "**1 of 7 tested task-method pairs beat" in after


@pytest.mark.parametrize("path", SCORE_FILES, ids=lambda p: p.name)
def test_scores_files_hold_only_ids_numbers_and_row_names(path):
    scores = load_scores(path)  # the loader's own check (strict shapes for every string)
    assert all(re.fullmatch(r"\d+", i) for i in scores["ids"])  # LaMP ids are numbers
    assert len(set(scores["ids"])) == len(scores["ids"])
    for label, row in scores["rows"].items():
        method = base_name(label.split("#", 1)[0])
        assert re.fullmatch(r"[a-z0-9-]+", method) and label.split("#")[1:] in ([], ["other-user"], ["none"])
        for mode in ("lenient", "official"):
            for values in row[mode].values():
                assert all(v is None or type(v) in (int, float) for v in values)
    strings = []

    def walk(value):
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                strings.append(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(scores)
    provenance = {scores["source"]["data_sha256"], *scores["source"]["commands"],
                  *scores["source"]["scored_with"].values(), scores["task"], scores["split"], scores["part"],
                  *(row["run"]["model"] for row in scores["rows"].values()),
                  *(row["run"]["retriever"] for row in scores["rows"].values())}
    fields = {"format", "task", "split", "part", "source", "data_sha256", "commands", "scored_with", "personalign",
              "git_revision", "ids", "gold_label", "rows", "reference", "run", "model", "retriever", "k", "seed",
              "limit", "lenient", "official", "unparsable", "label", "error", "rouge-1", "rouge-L",
              "personalign-scores/1"}
    others = [s for s in strings if s not in fields and s not in provenance and s not in scores["ids"]
              and s not in scores["rows"]]
    assert others == []
    assert all(c.startswith("personalign eval --data ") for c in scores["source"]["commands"])


@pytest.mark.skipif(not DATA.is_dir(), reason=f"RealLaMP is not at {DATA}")
@pytest.mark.parametrize("path", [p for p in SCORE_FILES if "LaMP_5" in p.name or "LaMP_7" in p.name],
                         ids=lambda p: p.name)
def test_no_gold_text_of_the_data_is_in_a_scores_file(path):
    scores = load_scores(path)
    task = get_task(scores["task"])
    _, outputs = find_split_files(DATA, task.name, scores["split"], scores["part"])
    text = path.read_text()
    golds = [g for g in read_outputs(outputs, task)[1].values() if len(g) >= 12]
    assert golds and not [g for g in golds if g in text or json.dumps(g)[1:-1] in text]


def test_a_scores_file_with_text_is_refused():
    scores = load_scores(SCORES / "LaMP_6-user-dev.json")
    for damage in (lambda s: s["ids"].__setitem__(0, "the subject of an email"),
                   lambda s: s["rows"]["lead"]["lenient"]["rouge-1"].__setitem__(0, "a title"),
                   lambda s: s["rows"]["lead"].__setitem__("prediction", ["some text"]),
                   lambda s: s["rows"]["lead"]["run"].__setitem__("model", "a model, with words"),
                   lambda s: s["source"]["commands"].append("cat ../shared/data/reallamp/x")):
        broken = json.loads(json.dumps(scores))
        damage(broken)
        with pytest.raises(ConfigError, match="ids and numbers only"):
            check_scores(broken, "damaged.json")


LAMP3 = get_task("LaMP_3")


def small_run(root: Path, n: int, ids: list[str] | None = None) -> Path:
    """A LaMP_3 run of n questions: two references, a fake LLM row and its no-profile control."""
    folder = root / "data" / "LaMP_3" / "user"
    folder.mkdir(parents=True)
    ids = ids or [str(100 + i) for i in range(n)]
    write_questions(folder / "dev_questions.json", [
        Example(id=ids[i], input=LAMP3.format_input(f"product {i}"), user_id=f"u{i % 7}",
                profile=[{"text": f"item {i} {j}", "score": str(1 + (i + j) % 5), "id": f"{i}-{j}"} for j in range(3)])
        for i in range(n)])
    write_outputs(folder / "dev_outputs.json", "LaMP_3", [(ids[i], str(1 + i % 5)) for i in range(n)])
    config = EvalConfig(data=str(root / "data"), task="LaMP_3", methods=["user-mean", "user-median", "zero-shot"],
                        out=str(root / "runs"), cache_dir=str(root / "cache"), profile_controls=["own", "none"])
    run_eval(config, llm=FakeHashLLM(["3", "five", "4 stars"]))
    return config.run_dir


def test_export_reproduces_the_runs_metrics_and_the_page_tests_them(tmp_path, capsys):
    run_dir = small_run(tmp_path, 24)
    assert main(["results", "export", str(run_dir), "--out", str(tmp_path / "scores"),
                 "--command", "personalign eval --data data --task LaMP_3 --methods user-mean,zero-shot"]) == 0
    path = tmp_path / "scores" / "LaMP_3-user-dev.json"
    assert path.is_file() and "ids and metric values only" in capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ts = score_file(path)
    assert set(ts.values) == set(metrics) and {"user-mean", "zero-shot", "zero-shot#none"} <= set(metrics)
    for label, values in ts.values.items():
        for mode in ("lenient", "official"):
            for metric in LAMP3.metrics:
                assert values[mode][metric] == pytest.approx(metrics[label][mode][metric], abs=1e-6)
                assert values[mode][f"{metric}_ci"] == pytest.approx(metrics[label][mode][f"{metric}_ci"], abs=1e-6)
    page = build_page(tmp_path / "scores")
    assert "### Against the strongest reference" in page and "| zero-shot | none |" in page


def test_export_refuses_an_id_that_is_text(tmp_path):
    run_dir = small_run(tmp_path, 3, ids=["1", "2", "a review of a product"])
    with pytest.raises(ConfigError, match="not a short token"):
        export_run(run_dir)
