"""experiments/synth_sweep.py: its table's drops and headroom, on a tiny rating sweep with references only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from experiments import synth_sweep
from personalign.tasks import get_task

SHARES = (0.0, 1.0)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    synth_sweep.main(["--out", str(out), "--shapes", "rating", "--shares", ",".join(map(str, SHARES)),
                      "--methods", "references,oracle", "--workers", "1", "--python", sys.executable])
    return out


def metrics(out: Path, share: float) -> dict[str, float]:
    results = json.loads((synth_sweep.run_dir(out, "rating", share) / "metrics.json").read_text())
    return {label: values["lenient"]["mae"] for label, values in results.items()}


def check_table(out: Path) -> None:
    """What the table must say, recomputed from each run's metrics.json (MAE: lower is better)."""
    for share in SHARES:
        mae = metrics(out, share)
        rows = {r["method"]: r for r in synth_sweep.share_rows("rating", share, out)}
        assert set(rows) == {label for label in mae if "#" not in label}
        for method, row in rows.items():
            for control in synth_sweep.CONTROLS:  # a drop is control MAE minus own MAE: + when the control is worse
                assert row[f"drop {control}"] == pytest.approx(mae[f"{method}#{control}"] - mae[method])
        assert rows["oracle"]["drop other-user"] == rows["oracle"]["drop none"] == 0  # it reads the rule, not the history
        assert rows["oracle"]["p other-user"] == 1.0
        assert rows["population-majority"]["drop other-user"] == 0  # it never reads the user
        baseline = rows["oracle"]["baseline score"]
        assert all(baseline <= mae[m] + 1e-12 for m in rows if m != "oracle")  # the best rule-blind row
        if share == 0:  # no rule: the oracle is the rule-blind answer, so there is no headroom to recover
            assert rows["oracle"]["baseline"] == synth_sweep.BLIND and baseline == mae["oracle"] == 0
            assert all(row["headroom"] is None for row in rows.values())
        else:
            assert rows["oracle"]["headroom"] == pytest.approx(1.0)
            assert all(rows[m]["headroom"] <= 1e-12 for m in rows if m != "oracle")  # rule-blind: none beats the base
            best = min((m for m in rows if m != "oracle"), key=mae.get)
            if rows["oracle"]["baseline"] == best:
                assert rows[best]["headroom"] == pytest.approx(0.0)
            # the strongest user-history reference loses to another user's history once every user has a rule
            assert rows["tfidf-user"]["drop other-user"] > 0 and rows["tfidf-user"]["p other-user"] < 0.05


def test_the_table_computes_drops_and_headroom(sweep, capsys):
    check_table(sweep)
    synth_sweep.main(["--out", str(sweep), "--shapes", "rating", "--shares", "0,1", "--table-only"])
    printed = capsys.readouterr().out
    assert "| 0 | oracle | 0.000 | +0.000 (1) | +0.000 (1) | blind answer 0.000 | undefined |" in printed
    assert "| 1 | oracle | 0.000 |" in printed and "+1.000 |" in printed


def test_the_check_fails_on_a_planted_sign_error(sweep, monkeypatch):
    monkeypatch.setattr(synth_sweep, "LOWER_IS_BETTER", frozenset())  # MAE read as higher-is-better
    with pytest.raises(AssertionError):
        check_table(sweep)


def test_the_check_fails_on_a_planted_rule_blind_answer(sweep, tmp_path):
    """A wrong rule-blind answer at share 0 makes the oracle differ from it: the headroom becomes defined."""
    rules_path = synth_sweep.share_dir(sweep, "rating", 0.0) / "data" / get_task("LaMP_3").name / "rules.json"
    original = rules_path.read_text()
    rules = json.loads(original)
    oracle_log = synth_sweep.run_dir(sweep, "rating", 0.0) / "predictions" / "oracle.jsonl"
    first = json.loads(oracle_log.read_text().splitlines()[0])["id"]
    blind = rules["answers"][first]["blind"]
    rules["answers"][first]["blind"] = "1" if blind != "1" else "5"
    try:
        rules_path.write_text(json.dumps(rules))
        with pytest.raises(AssertionError):
            check_table(sweep)
    finally:
        rules_path.write_text(original)
