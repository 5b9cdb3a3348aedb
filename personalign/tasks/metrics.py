"""The official LaMP metrics (LaMP-Benchmark/LaMP ``eval/evaluation.py`` semantics).

- classification: accuracy and macro-F1 over the task's label list (``labels=range(n)``);
  a prediction outside the label set maps to -1 and counts as wrong.
- rating: MAE and RMSE; a prediction that is not a number becomes whichever of the scale's ends
  (1 or 5) is farther from the gold.
- generation: ROUGE-1 and ROUGE-L F-measure (``rouge_score``, no stemming, as HF ``evaluate``'s
  default) after stripping whitespace, averaged over examples.
"""

from __future__ import annotations

import math
from typing import Sequence

from personalign.tasks.spec import TaskSpec


def label_index(labels: Sequence[str], value: str) -> int:
    """The position of ``value`` (stripped) among ``labels``; -1 when it is not one of them."""
    try:
        return list(labels).index(value.strip())
    except ValueError:
        return -1


def classification_metrics(preds: Sequence[str], golds: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    pred_ids = [label_index(labels, p) for p in preds]
    gold_ids = [label_index(labels, g) for g in golds]
    return {
        "accuracy": float(accuracy_score(gold_ids, pred_ids)),
        "f1": float(f1_score(gold_ids, pred_ids, labels=list(range(len(labels))), average="macro", zero_division=0)),
    }


def rating_value(pred: str, gold: str, low: float = 1.0, high: float = 5.0) -> float:
    """A prediction's numeric value; unparseable -> the scale end farthest from the gold."""
    try:
        value = float(pred.strip())
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    gold_value = float(gold.strip())
    return low if abs(low - gold_value) > abs(high - gold_value) else high


def rating_metrics(preds: Sequence[str], golds: Sequence[str], low: float = 1.0, high: float = 5.0) -> dict[str, float]:
    errors = [rating_value(p, g, low, high) - float(g) for p, g in zip(preds, golds)]
    n = max(len(errors), 1)
    return {"mae": sum(abs(e) for e in errors) / n, "rmse": math.sqrt(sum(e * e for e in errors) / n)}


def rouge_scores(pred: str, gold: str) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L F-measure for one pair."""
    scores = _rouge_scorer().score(gold.strip(), pred.strip())
    return {"rouge-1": scores["rouge1"].fmeasure, "rouge-L": scores["rougeL"].fmeasure}


def generation_metrics(preds: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    pairs = [rouge_scores(p, g) for p, g in zip(preds, golds)]
    n = max(len(pairs), 1)
    return {key: sum(s[key] for s in pairs) / n for key in ("rouge-1", "rouge-L")}


_SCORER = None


def _rouge_scorer():
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)
    return _SCORER


def compute_metrics(task: TaskSpec, preds: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    """Official metrics for a task; ``preds`` and ``golds`` are aligned lists."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} golds")
    if task.kind == "classification":
        result = classification_metrics(preds, golds, task.labels)
    elif task.kind == "rating":
        result = rating_metrics(preds, golds, *task.rating_range)
    else:
        result = generation_metrics(preds, golds)
    return {name: result[name] for name in task.metrics}


def example_score(task: TaskSpec, pred: str, gold: str) -> float:
    """A per-example score where higher is better (used as an RL reward and for error analysis)."""
    if task.kind == "classification":
        return float(pred.strip() == gold.strip())
    if task.kind == "rating":
        low, high = task.rating_range
        return -abs(rating_value(pred, gold, low, high) - float(gold))
    return rouge_scores(pred, gold)["rouge-1"]


def worst_score(task: TaskSpec) -> float:
    """The lowest ``example_score`` a well-formed answer can get: 0, or minus the rating scale's width."""
    if task.kind == "rating":
        low, high = task.rating_range
        return -(high - low)
    return 0.0


LOWER_IS_BETTER = frozenset({"mae", "rmse"})
