"""Uncertainty for LaMP metrics: bootstrap intervals and paired tests on the same examples.

Every metric is written as per-example statistics plus an aggregate over their sums, so one
vectorised code path serves the point estimate, the bootstrap (resampled examples) and the
paired permutation test (each example's two predictions swapped at random):

- accuracy, MAE, ROUGE: the mean of a per-example value;
- RMSE: the square root of the mean squared error;
- macro-F1: per-label true positives, predictions and golds (``labels=range(n)``, zero_division=0,
  as scikit-learn and the official LaMP script compute it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from personalign.tasks.metrics import label_index, rating_value, rouge_scores
from personalign.tasks.spec import TaskSpec

BOOTSTRAP_SAMPLES = 2000
PERMUTATIONS = 5000
LOWER_IS_BETTER = frozenset({"mae", "rmse"})


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def text(self, digits: int = 4) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class PairedTest:
    """``a - b`` on the same examples, its bootstrap interval and a two-sided permutation p-value."""

    metric: str
    a: float
    b: float
    diff: Interval
    p_value: float
    n: int

    @property
    def a_better(self) -> bool:
        """True when A is better than B at p < 0.05 (lower is better for MAE/RMSE)."""
        better = self.diff.value < 0 if self.metric in LOWER_IS_BETTER else self.diff.value > 0
        return better and self.p_value < 0.05


def _rating_official(pred: str, gold: str, low: float, high: float) -> float:
    """LaMP's ``create_mapping``: ``float(pred)``, else the scale end farthest from the gold."""
    try:
        return float(pred)
    except ValueError:
        gold_value = float(gold)
        return low if abs(low - gold_value) > abs(high - gold_value) else high


def label_stats(metric: str, pred_ids: np.ndarray, gold_ids: np.ndarray, n_labels: int) -> np.ndarray:
    """Accuracy or macro-F1 statistics from label indices (-1: outside the label set)."""
    pred_ids, gold_ids = np.asarray(pred_ids, dtype=int), np.asarray(gold_ids, dtype=int)
    if metric == "accuracy":
        return (pred_ids == gold_ids).astype(float)[:, None]
    eye = np.eye(n_labels + 1)[:, :-1]  # index -1 (outside the label set) is the all-zero row
    pred_hot, gold_hot = eye[pred_ids], eye[gold_ids]
    return np.concatenate([pred_hot * gold_hot, pred_hot, gold_hot], axis=1)


def rating_errors(task: TaskSpec, preds: Sequence[str], golds: Sequence[str], mode: str = "lenient") -> np.ndarray:
    """Each prediction's rating minus the gold (an unreadable one as the mode reads it)."""
    low, high = task.rating_range
    value = _rating_official if mode == "official" else rating_value
    return np.array([value(p.strip(), g.strip(), low, high) - float(g) for p, g in zip(preds, golds)], dtype=float)


def error_stats(metric: str, errors: np.ndarray) -> np.ndarray:
    """MAE or RMSE statistics from signed rating errors."""
    errors = np.asarray(errors, dtype=float)
    return (np.abs(errors) if metric == "mae" else errors ** 2)[:, None]


def example_stats(task: TaskSpec, metric: str, preds: Sequence[str], golds: Sequence[str],
                  mode: str = "lenient") -> np.ndarray:
    """Per-example statistics (n x d) whose column sums determine ``metric``."""
    preds = [p.strip() for p in preds]
    golds = [g.strip() for g in golds]
    if metric in ("accuracy", "f1"):
        labels = list(task.labels)
        pred_ids = np.array([label_index(labels, p) for p in preds], dtype=int)
        gold_ids = np.array([label_index(labels, g) for g in golds], dtype=int)
        return label_stats(metric, pred_ids, gold_ids, len(labels))
    if metric in ("mae", "rmse"):
        return error_stats(metric, rating_errors(task, preds, golds, mode))
    if metric in ("rouge-1", "rouge-L"):
        return np.array([rouge_scores(p, g)[metric] for p, g in zip(preds, golds)], dtype=float)[:, None]
    raise ValueError(f"unknown metric '{metric}'")


def aggregate(metric: str, sums: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """The metric from column sums (``sums`` is ... x d; leading axes are resamples)."""
    if metric == "rmse":
        return np.sqrt(sums[..., 0] / n)
    if metric == "f1":
        labels = sums.shape[-1] // 3
        tp, predicted, gold = sums[..., :labels], sums[..., labels:2 * labels], sums[..., 2 * labels:]
        denominator = predicted + gold
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)
        return f1.mean(axis=-1)
    return sums[..., 0] / n


@lru_cache(maxsize=16)
def _resample_counts(n: int, samples: int, seed: int) -> np.ndarray:
    """How often each example appears in each of ``samples`` bootstrap resamples (samples x n)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(samples, n)) + np.arange(samples)[:, None] * n
    counts = np.bincount(picks.ravel(), minlength=samples * n).reshape(samples, n).astype(float)
    counts.flags.writeable = False
    return counts


def bootstrap_interval(metric: str, stats: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                       level: float = 0.95) -> Interval:
    """Point estimate and percentile bootstrap interval over examples."""
    n = len(stats)
    value = float(aggregate(metric, stats.sum(axis=0), n))
    if n == 0:
        return Interval(math.nan, math.nan, math.nan)
    draws = aggregate(metric, _resample_counts(n, samples, seed) @ stats, n)
    tail = (1 - level) / 2 * 100
    return Interval(value, float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail)))


def paired_test(metric: str, stats_a: np.ndarray, stats_b: np.ndarray, permutations: int = PERMUTATIONS,
                seed: int = 0) -> PairedTest:
    """Paired comparison of two methods' statistics on the same examples (rows aligned)."""
    if stats_a.shape != stats_b.shape:
        raise ValueError(f"paired test needs the same examples: {stats_a.shape} vs {stats_b.shape}")
    n = len(stats_a)
    a = float(aggregate(metric, stats_a.sum(axis=0), n))
    b = float(aggregate(metric, stats_b.sum(axis=0), n))
    counts = _resample_counts(n, BOOTSTRAP_SAMPLES, seed)
    diffs = aggregate(metric, counts @ stats_a, n) - aggregate(metric, counts @ stats_b, n)
    interval = Interval(a - b, float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5)))
    rng = np.random.default_rng(seed + 1)
    swap = rng.integers(0, 2, size=(permutations, n)).astype(float)
    perm_a = (1 - swap) @ stats_a + swap @ stats_b
    perm_b = swap @ stats_a + (1 - swap) @ stats_b
    null = aggregate(metric, perm_a, n) - aggregate(metric, perm_b, n)
    extreme = np.sum(np.abs(null) >= abs(a - b) - 1e-12)
    return PairedTest(metric, a, b, interval, float((extreme + 1) / (permutations + 1)), n)
