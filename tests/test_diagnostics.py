"""Output diagnostics: a constant answer and a user-reading answer are told apart."""

from __future__ import annotations

from personalign.eval.diagnostics import label_rows, rating_rows, text_rows
from personalign.tasks import get_task


def _row(example_id: str, raw: str, gold: str) -> dict:
    return {"id": example_id, "gold": gold, "raw": raw, "filter": "plain"}


def test_rating_diagnostics_expose_a_constant_and_credit_following_the_user():
    task = get_task("LaMP_3")
    profiles = {"h": [{"text": "bad", "score": "1"}, {"text": "meh", "score": "2"}],
                "m": [{"text": "ok", "score": "4"}],
                "l": [{"text": "great", "score": "5"}, {"text": "fine", "score": "5"}]}
    golds = {"h": "1", "m": "4", "l": "5"}
    logs = {"constant": [_row(i, "5", g) for i, g in golds.items()],
            "reads-user": [_row("h", "2", "1"), _row("m", "4", "4"), _row("l", "5", "5")]}
    constant, reads = rating_rows(task, logs, profiles)
    assert constant["distinct"] == 1 and constant["predicted 1/2/3/4/5"] == "0/0/0/0/3"
    assert constant["corr(pred, user mean)"] == "n/a (constant)"
    assert constant["MAE harsh (< 3.5)"] == "4.000 (n=1)" and reads["MAE harsh (< 3.5)"] == "1.000 (n=1)"
    assert float(reads["corr(pred, user mean)"]) > 0.9


def test_label_diagnostics_count_leaving_the_users_majority_and_being_right_then():
    task = get_task("LaMP_2")
    profiles = {"a": [{"description": "x", "tag": "comedy"}, {"description": "y", "tag": "comedy"}],
                "b": [{"description": "z", "tag": "action"}]}
    logs = {"m": [_row("a", "comedy", "comedy"), _row("b", "sci-fi", "sci-fi")]}
    (row,) = label_rows(task, logs, profiles)
    assert row["leaves user majority"] == "0.50" and row["right when leaving"] == "1.00"
    assert row["majority right there"] == "0.00" and row["distinct"] == 2


def test_text_diagnostics_count_copied_words_and_the_users_own_words_recovered():
    task = get_task("LaMP_7")
    inputs = {"t": task.format_input("I am very happy about the match today")}
    profiles = {"t": [{"text": "buzzing for the footy lads"}]}
    gold = "buzzing about the match today lads"
    logs = {"echo": [_row("t", "I am very happy about the match today", gold)],
            "reads-user": [_row("t", "buzzing about the match today", gold)]}
    echo, reads = text_rows(task, logs, inputs, profiles)
    assert echo["answer words from the input"] == "1.00" and echo["gold's history-only words recovered"] == "0 of 2"
    assert reads["from the history only"] == "0.20" and reads["gold's history-only words recovered"] == "1 of 2"
    assert reads["answer words"] == "5.0" and reads["gold words"] == "6.0"
