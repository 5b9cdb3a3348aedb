"""Does a method read the user, or answer a prior? Per-method output diagnostics from the prediction logs.

- Ratings (LaMP_3): the distribution of predicted ratings, the mean absolute error per user-leniency
  bucket (the user's mean past rating), and how far predictions follow the user's mean.
- Labels (LaMP_2): how often the prediction leaves the user's majority label, and how often it is then
  right, against how often staying would have been right.
- Text: answer and gold length, where the answer's words come from (the input, or only the user's
  history), and how many of the gold's history-only words (in the user's past answers, not the input)
  the answer recovers: the words that only reading the user can give.

A method that answers one value for every question shows up here as a single distinct prediction.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np

from personalign.data.lamp_io import load_split
from personalign.eval.scoring import score_rows
from personalign.tasks.spec import TaskSpec
from personalign.tasks.user_answers import majority, user_labels

LENIENCY_BUCKETS = ((0.0, 3.5, "harsh (< 3.5)"), (3.5, 4.5, "middle (3.5–4.5)"), (4.5, 9.9, "lenient (≥ 4.5)"))


def _user_means(task: TaskSpec, profiles: dict[str, list]) -> dict[str, float | None]:
    out = {}
    for example_id, profile in profiles.items():
        values = [float(v) for v in user_labels(task, profile)]
        out[example_id] = mean(values) if values else None
    return out


def rating_rows(task: TaskSpec, logs: dict[str, list[dict]], profiles: dict[str, list]) -> list[dict[str, Any]]:
    """One row per method: predicted-rating counts, distinct values, MAE per leniency bucket, corr with user mean."""
    user_mean = _user_means(task, profiles)
    rows = []
    for label, log in logs.items():
        scored = score_rows(task, log)
        preds = [float(p) if _is_number(p) else None for p in scored.predictions]
        counts = Counter(int(round(p)) for p in preds if p is not None)
        row: dict[str, Any] = {"method": label, "n": len(preds),
                               "predicted 1/2/3/4/5": "/".join(str(counts.get(r, 0)) for r in range(1, 6)),
                               "distinct": len(counts)}
        for low, high, name in LENIENCY_BUCKETS:
            errors = [abs(p - float(g)) for i, p, g in zip(scored.ids, preds, scored.golds)
                      if p is not None and user_mean.get(i) is not None and low <= user_mean[i] < high]
            row[f"MAE {name}"] = f"{mean(errors):.3f} (n={len(errors)})" if errors else "–"
        pairs = [(p, user_mean[i]) for i, p in zip(scored.ids, preds) if p is not None and user_mean.get(i) is not None]
        row["corr(pred, user mean)"] = _corr(pairs)
        rows.append(row)
    return rows


def label_rows(task: TaskSpec, logs: dict[str, list[dict]], profiles: dict[str, list]) -> list[dict[str, Any]]:
    """One row per method: distinct labels, share leaving the user's majority, accuracy when leaving vs staying."""
    user_top = {i: majority(user_labels(task, p)) for i, p in profiles.items()}
    rows = []
    for label, log in logs.items():
        scored = score_rows(task, log)
        left = [(p, g, user_top.get(i, "")) for i, p, g in zip(scored.ids, scored.predictions, scored.golds)
                if p != user_top.get(i, "")]
        n = len(scored.ids)
        rows.append({"method": label, "n": n, "distinct": len(set(scored.predictions)),
                     "top prediction share": f"{Counter(scored.predictions).most_common(1)[0][1] / n:.2f}" if n else "–",
                     "leaves user majority": f"{len(left) / n:.2f}" if n else "–",
                     "right when leaving": f"{sum(p == g for p, g, _ in left) / len(left):.2f}" if left else "–",
                     "majority right there": f"{sum(m == g for _, g, m in left) / len(left):.2f}" if left else "–"})
    return rows


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def text_rows(task: TaskSpec, logs: dict[str, list[dict]], inputs: dict[str, str],
              profiles: dict[str, list]) -> list[dict[str, Any]]:
    """One row per method: lengths, the answer's word sources, and the gold's history-only words recovered."""
    sources = {}
    for i, profile in profiles.items():
        seen = set(_words(task.query_text(inputs[i])))
        history = {w for item in profile for w in _words(task.item_output(item) or "")} - seen
        sources[i] = (seen, history)
    rows = []
    for label, log in logs.items():
        scored = score_rows(task, log)
        answer_words = gold_words = from_input = from_history = wanted = recovered = 0
        for i, prediction, gold in zip(scored.ids, scored.predictions, scored.golds):
            seen, history = sources.get(i, (set(), set()))
            answer, gold_list = _words(prediction), _words(gold)
            answer_words, gold_words = answer_words + len(answer), gold_words + len(gold_list)
            from_input += sum(w in seen for w in answer)
            from_history += sum(w in history for w in answer)
            wanted_here = set(gold_list) & history
            wanted, recovered = wanted + len(wanted_here), recovered + len(wanted_here & set(answer))
        n = max(len(scored.ids), 1)
        rows.append({"method": label, "n": len(scored.ids), "answer words": f"{answer_words / n:.1f}",
                     "gold words": f"{gold_words / n:.1f}",
                     "answer words from the input": f"{from_input / max(answer_words, 1):.2f}",
                     "from the history only": f"{from_history / max(answer_words, 1):.2f}",
                     "gold's history-only words recovered": f"{recovered} of {wanted}"})
    return rows


def diagnostics_rows(task: TaskSpec, data: str | Path, split: str, part: str,
                     logs: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """The task's diagnostic rows: ratings, labels or text."""
    examples, _ = load_split(data, task, split, part)
    profiles = {e.id: e.profile for e in examples}
    if task.kind == "rating":
        return rating_rows(task, logs, profiles)
    if task.kind == "classification":
        return label_rows(task, logs, profiles)
    return text_rows(task, logs, {e.id: e.input for e in examples}, profiles)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _corr(pairs: list[tuple[float, float]]) -> str:
    if len(pairs) < 3:
        return "–"
    a, b = np.array(pairs).T
    if a.std() == 0 or b.std() == 0:
        return "n/a (constant)"
    return f"{float(np.corrcoef(a, b)[0, 1]):.3f}"
