"""The results page never counts a ceiling (synthetic data's oracle, which knows the true rules) as an LLM row."""

from __future__ import annotations

from personalign.cli import main
from personalign.eval.results_page import build_page


def test_the_oracle_is_a_ceiling_not_an_llm_row_that_beats_the_reference(tmp_path):
    data, runs, scores = tmp_path / "data", tmp_path / "runs", tmp_path / "scores"
    assert main(["data", "synth", "--out", str(data), "--users", "30", "--shapes", "rating"]) == 0
    assert main(["eval", "--data", str(data), "--task", "LaMP_3", "--split", "time", "--out", str(runs),
                 "--methods", "user-mean,nearest-output,oracle", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert main(["results", "export", str(runs), "--out", str(scores)]) == 0
    page = build_page(scores)
    assert "| oracle | ceiling |" in page
    [summary] = [line for line in page.splitlines() if line.startswith("| LaMP_3 | 30 | mae |")]
    assert summary.endswith("|  | no LLM rows |"), summary  # the oracle is no LLM row, not the best one
    assert "beat their task's strongest non-LLM reference" not in page  # ... and no win is claimed for it
    assert "| oracle | LLM |" not in page
