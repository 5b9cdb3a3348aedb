"""The results page's "Synthetic users" section, built from ``<scores>/synthetic/*.json`` (issue 30).

- headroom share: the oracle 1, the best rule-blind reference 0, a row halfway 0.5; undefined without an oracle
  or when the oracle does not beat the reference;
- drops under the profile controls are + when the control is worse, for MAE (lower is better) and ROUGE;
- the section is absent without synthetic files, and synthetic files never change RealLaMP's summary;
- end to end: `personalign data synth`, `eval` (references and oracle, no LLM), `results export --data`, `page`.

The scores files are small but real: written by ``write_scores`` and loaded through ``check_scores``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from personalign.cli import main
from personalign.eval.report import MIN_QUESTIONS_FOR_TESTS
from personalign.eval.results_page import build_page
from personalign.eval.scores import FORMAT, write_scores
from personalign.eval.synthetic_page import headroom_share
from personalign.eval.task_scores import score_file

ROOT = Path(__file__).resolve().parent.parent
SCORES = ROOT / "docs" / "scores"
SECTION = "## Synthetic users (known per-user rules)"


def _row(name: str, values: list, reference: bool) -> dict:
    return {"reference": reference, "run": {"model": None if reference else "fake-model", "retriever": "bm25",
                                            "k": 4, "seed": 0, "limit": None},
            "lenient": {name: values}, "official": {name: values}, "unparsable": [0] * len(values)}


def scores_file(path: Path, task: str, rows: dict[str, tuple[list, bool]]) -> Path:
    """A checked scores file of ``task`` (LaMP_3: signed rating errors; LaMP_5: ROUGE per metric)."""
    n = len(next(iter(rows.values()))[0])
    out_rows = {}
    for label, (values, reference) in rows.items():
        if task == "LaMP_3":
            out_rows[label] = _row("error", values, reference)
        else:
            out_rows[label] = _row("rouge-1", values, reference)
            out_rows[label]["lenient"]["rouge-L"] = out_rows[label]["official"]["rouge-L"] = values
    scores = {"format": FORMAT, "task": task, "split": "time", "part": "dev",
              "source": {"data_sha256": "ab" * 32, "commands": [], "scored_with": {"personalign": "0.1.0"}},
              "ids": [f"s{i:04d}-007" for i in range(n)], "rows": out_rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_scores(scores, path)
    return path


def ratings(n: int = 24, oracle_error: int | None = 0) -> dict[str, tuple[list, bool]]:
    """Signed rating errors: reference MAE 2, rag MAE 1 (halfway), its other-user control worse (MAE 2) and its
    none control better (MAE 0.5), a weaker reference (MAE 3) and the oracle (MAE ``oracle_error``)."""
    signs = [1 if i % 2 else -1 for i in range(n)]
    rows = {"user-mean": ([2 * s for s in signs], True), "population-majority": ([3 * s for s in signs], True),
            "rag": ([s for s in signs], False), "rag#other-user": ([2 * s for s in signs], False),
            "rag#none": ([0 if i % 2 else s for i, s in enumerate(signs)], False)}
    if oracle_error is not None:
        rows["oracle"] = ([oracle_error * s for s in signs], False)
    return rows


def table_rows(page: str) -> dict[str, dict[str, str]]:
    """The synthetic section's first table, as method -> column -> cell."""
    lines = [line for line in page.split(SECTION, 1)[1].split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    header = [re.sub(r" [↑↓]$", "", c.strip()) for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        rows[cells["method"].replace(" ★", "")] = cells
    return rows


def page_with(tmp_path: Path, synthetic: dict[str, dict[str, tuple[list, bool]]]) -> str:
    """A page from one small RealLaMP-shaped file and the given synthetic files (name -> rows)."""
    scores_file(tmp_path / "scores" / "LaMP_3-user-dev.json", "LaMP_3", ratings(24))
    for name, rows in synthetic.items():
        scores_file(tmp_path / "scores" / "synthetic" / name, name.split("-")[0], rows)
    return build_page(tmp_path / "scores")


def test_headroom_share_and_control_drops_for_mae(tmp_path):
    page = page_with(tmp_path, {"LaMP_3-time-dev.json": ratings(24)})
    assert "### Ratings (LaMP_3 format, time split, dev, 24 questions)" in page
    rows = table_rows(page)
    assert list(rows) == ["user-mean", "population-majority", "rag", "oracle"]  # references, LLM rows, oracle
    assert rows["oracle"]["headroom share"] == "1.000" and rows["user-mean"]["headroom share"] == "0.000"
    assert rows["rag"]["headroom share"] == "0.500" and rows["population-majority"]["headroom share"] == "-0.500"
    assert rows["rag"]["mae"].startswith("1.0000 [")  # with its interval: 24 questions are enough
    # against the reference (MAE 2): rag is 1 better, so + in the better direction, and significant
    assert rows["rag"]["vs ★ [95% CI]"].startswith("+1.000 [") and float(rows["rag"]["p vs ★"]) < 0.05
    assert rows["user-mean"]["vs ★ [95% CI]"] == ""  # the reference itself
    # other-user is worse (MAE 2 vs 1): +1; none is better (MAE 0.5): -0.5; a row without controls: blank
    assert rows["rag"]["drop other-user [95% CI]"].startswith("+1.000 [")
    assert float(rows["rag"]["p other-user"]) < 0.05
    assert rows["rag"]["drop none [95% CI]"].startswith("-0.500 [")
    assert rows["user-mean"]["drop other-user [95% CI]"] == "" and rows["user-mean"]["p none"] == ""
    assert "Best rule-blind reference ★: `user-mean` (mae 2.0000); oracle: mae 0.0000." in page


def test_drops_and_headroom_for_rouge_where_higher_is_better(tmp_path):
    n = 24
    rows = {"echo": ([0.4] * n, True), "rag": ([0.7] * n, False), "rag#other-user": ([0.5] * n, False),
            "rag#none": ([0.8] * n, False), "oracle": ([1.0] * n, False)}
    path = scores_file(tmp_path / "LaMP_5-time-dev.json", "LaMP_5", rows)
    ts = score_file(path)
    assert headroom_share(ts, "rag", "echo", "oracle") == pytest.approx(0.5)
    assert headroom_share(ts, "oracle", "echo", "oracle") == 1.0
    table = table_rows(page_with(tmp_path, {"LaMP_5-time-dev.json": rows}))
    assert table["rag"]["drop other-user [95% CI]"].startswith("+0.200 [")
    assert table["rag"]["drop none [95% CI]"].startswith("-0.100 [")
    assert table["rag"]["vs ★ [95% CI]"].startswith("+0.300 [")


def test_headroom_is_undefined_without_an_oracle_or_when_it_does_not_beat_the_reference(tmp_path):
    no_oracle = scores_file(tmp_path / "a" / "LaMP_3-time-dev.json", "LaMP_3", ratings(24, oracle_error=None))
    weak_oracle = scores_file(tmp_path / "b" / "LaMP_3-time-dev.json", "LaMP_3", ratings(24, oracle_error=2))
    assert headroom_share(score_file(no_oracle), "rag", "user-mean", None) is None
    assert headroom_share(score_file(weak_oracle), "rag", "user-mean", "oracle") is None
    page = page_with(tmp_path, {"LaMP_3-time-dev.json": ratings(24, oracle_error=2)})
    assert {row["headroom share"] for row in table_rows(page).values()} == {"undefined"}
    assert "it does not beat the reference, so the headroom share is undefined" in page


def test_too_few_questions_show_values_only(tmp_path):
    n = MIN_QUESTIONS_FOR_TESTS - 4
    rows = table_rows(page_with(tmp_path, {"LaMP_3-time-dev.json": ratings(n)}))
    assert rows["rag"]["mae"] == "1.0000" and rows["rag"]["p vs ★"] == "" and rows["rag"]["p other-user"] == ""
    assert rows["rag"]["drop other-user [95% CI]"] == "+1.000" and rows["rag"]["headroom share"] == "0.500"


def test_the_section_is_absent_without_synthetic_files_and_never_changes_the_reallamp_summary(tmp_path):
    real = tmp_path / "scores"
    real.mkdir()
    for path in SCORES.glob("*.json"):
        shutil.copy(path, real)
    without = build_page(real)
    (real / "synthetic").mkdir()
    assert build_page(real) == without  # an empty folder: no section either
    assert SECTION not in without and "synthetic/" not in without
    scores_file(real / "synthetic" / "LaMP_3-time-dev.json", "LaMP_3", ratings(24))
    page = build_page(real)
    assert SECTION in page and "`synthetic/LaMP_3-time-dev.json`" in page
    head, synthetic = page.split(SECTION)
    assert without.startswith(head)  # summary, headline and every RealLaMP section as they were
    assert "## Where the scores came from" in synthetic and synthetic.index("| Ratings |") > synthetic.index(
        "## Where the scores came from")
    summary = head.split("## Summary", 1)[1].split("\n## ", 1)[0]
    summary_rows = [line for line in summary.splitlines() if line.startswith("| LaMP_")]
    assert len(summary_rows) == len(list(SCORES.glob("*.json")))


def test_the_plot_is_linked_only_when_it_is_there(tmp_path):
    assert "![" not in page_with(tmp_path, {"LaMP_3-time-dev.json": ratings(24)}).split(SECTION)[1]
    (tmp_path / "img").mkdir()
    shutil.copy(ROOT / "docs" / "img" / "synth_controls.png", tmp_path / "img")
    assert "](img/synth_controls.png)" in build_page(tmp_path / "scores")


def test_synthetic_data_exports_and_pages_end_to_end(tmp_path, monkeypatch, capsys):
    """Real synthetic data and a real eval run of the references and the oracle (no LLM)."""
    monkeypatch.chdir(tmp_path)
    synth = "personalign data synth --out data --shapes rating --users 24 --seed 0"
    evaluate = ("personalign eval --data data --task LaMP_3 --split time --part dev --methods user-mean,oracle "
                "--profile-control own,other-user,none --out runs")
    assert main(synth.split()[1:]) == 0
    assert main([*evaluate.split()[1:], "--cache-dir", "cache"]) == 0
    assert main(["results", "export", "runs", "--data", "data", "--out", "scores/synthetic",
                 "--command", synth, "--command", evaluate]) == 0
    scores_file(tmp_path / "scores" / "LaMP_3-user-dev.json", "LaMP_3", ratings(24))
    capsys.readouterr()
    page = build_page(tmp_path / "scores")
    rows = table_rows(page)
    assert list(rows) == ["user-mean", "oracle"]
    assert rows["oracle"]["mae"].startswith("0.0000") and rows["oracle"]["headroom share"] == "1.000"
    assert rows["user-mean"]["headroom share"] == "0.000"
    # every synthetic user has a leniency offset: without a history user-mean has nothing to go on
    assert rows["user-mean"]["drop none [95% CI]"].startswith("+") and float(rows["user-mean"]["p none"]) < 0.05
    assert synth in page and evaluate in page
