"""Does a method read the user, or answer a prior? Per-method output diagnostics from the prediction logs.

- Ratings (LaMP_3): the distribution of predicted ratings, the mean absolute error per user-leniency
  bucket (the user's mean past rating), and how far predictions follow the user's mean.
- Labels (LaMP_2): how often the prediction leaves the user's majority label, and how often it is then
  right, against how often staying would have been right.

A method that answers one value for every question shows up here as a single distinct prediction.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np

from personalign.data.lamp_io import load_split
from personalign.eval.scoring import score_rows
from personalign.methods._reference import majority, user_labels
from personalign.tasks.spec import TaskSpec

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


def diagnostics_rows(task: TaskSpec, data: str | Path, split: str, part: str,
                     logs: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """The task's diagnostic rows (empty for text tasks)."""
    if task.kind not in ("rating", "classification"):
        return []
    examples, _ = load_split(data, task, split, part)
    profiles = {e.id: e.profile for e in examples}
    return rating_rows(task, logs, profiles) if task.kind == "rating" else label_rows(task, logs, profiles)


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
