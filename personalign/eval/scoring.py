"""Score time: filters parse raw rows, then metrics with bootstrap intervals (no LLM involved)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from personalign.errors import ConfigError
from personalign.tasks.filters import MODES, apply_filter
from personalign.tasks.parsing import is_answer
from personalign.tasks.spec import TaskSpec
from personalign.tasks.statistics import bootstrap_interval, example_stats

SCORE_MODES = MODES


def row_prediction(task: TaskSpec, row: dict[str, Any], mode: str = "lenient") -> tuple[str, bool]:
    """``(prediction, fell back)`` for one prediction-log row."""
    filtered = apply_filter(task, row.get("filter", "plain"), row.get("raw", ""), row.get("trace"), mode)
    return filtered.prediction, filtered.fallback


def examples_sha(ids: Sequence[str]) -> str:
    """A short hash of an ordered example-id list: methods are compared only on the same set."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


@dataclass
class Scored:
    """One method's rows scored in one mode: predictions, golds and per-metric statistics."""

    ids: list[str]
    predictions: list[str]
    golds: list[str]
    fallbacks: list[bool]
    stats: dict[str, np.ndarray]


def score_rows(task: TaskSpec, rows: list[dict[str, Any]], mode: str = "lenient") -> Scored:
    """Parse every row with its filter and compute per-example statistics for the task's metrics."""
    if mode not in SCORE_MODES:
        raise ConfigError(f"unknown scoring mode '{mode}'; choose from: {', '.join(SCORE_MODES)}")
    parsed = [row_prediction(task, row, mode) for row in rows]
    preds = [p for p, _ in parsed]
    golds = [str(row.get("gold")) for row in rows]
    stats = {metric: example_stats(task, metric, preds, golds, mode) for metric in task.metrics}
    return Scored([str(r["id"]) for r in rows], preds, golds, [f for _, f in parsed], stats)


def official_rouge(preds: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    """ROUGE as LaMP reports it: HF ``evaluate``'s rouge, i.e. rouge_score's BootstrapAggregator mid F.

    ``evaluate`` leaves the bootstrap unseeded; here numpy is seeded with 0 for a stable number.
    It differs from the plain mean by a few 1e-4.
    """
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)
    scores = [scorer.score_multi([gold.strip()], pred.strip()) for pred, gold in zip(preds, golds)]
    return official_rouge_of({"rouge-1": [s["rouge1"].fmeasure for s in scores],
                              "rouge-L": [s["rougeL"].fmeasure for s in scores]})


def official_rouge_of(fmeasures: dict[str, Sequence[float]]) -> dict[str, float]:
    """``official_rouge`` from per-example F-measures (``rouge-1``, ``rouge-L``): the aggregator resamples
    each measure's column on its own, so the F column alone gives the same mid F."""
    from rouge_score import scoring

    aggregator = scoring.BootstrapAggregator()
    for rouge1, rouge_l in zip(fmeasures["rouge-1"], fmeasures["rouge-L"]):
        aggregator.add_scores({"rouge1": scoring.Score(rouge1, rouge1, rouge1),
                               "rougeL": scoring.Score(rouge_l, rouge_l, rouge_l)})
    state = np.random.get_state()
    np.random.seed(0)
    try:
        result = aggregator.aggregate()
    finally:
        np.random.set_state(state)
    return {"rouge-1": float(result["rouge1"].mid.fmeasure), "rouge-L": float(result["rougeL"].mid.fmeasure)}


def summarize(task: TaskSpec, rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Both scoring modes with intervals, plus fallback, empty-answer, token and time averages."""
    n = len(rows)
    out: dict[str, Any] = {"n": n, "examples_sha": examples_sha([str(r["id"]) for r in rows])}
    for mode in SCORE_MODES:
        scored = score_rows(task, rows, mode)
        values: dict[str, Any] = {}
        official = mode == "official" and task.kind == "generation"
        point = official_rouge(scored.predictions, scored.golds) if official and n else {}
        for metric in task.metrics:
            interval = bootstrap_interval(metric, scored.stats[metric], seed=seed)
            values[metric] = point.get(metric, interval.value)
            values[f"{metric}_ci"] = [interval.low, interval.high]
        if mode == "lenient":
            out["fallback_rate"] = sum(scored.fallbacks) / max(n, 1)
            # answers the parser cannot read (no label, no rating, options with no choice, only a lead-in)
            out["unparsable_rate"] = sum(not is_answer(task, p) for p in scored.predictions) / max(n, 1)
        out[mode] = values
    traces = [r.get("trace") or {} for r in rows]
    out["empty_rate"] = sum(not str(r.get("raw", "")).strip() for r in rows) / max(n, 1)
    out["prompt_tokens/ex"] = sum(t.get("prompt_tokens", 0) for t in traces) / max(n, 1)
    # the context of the calls that write the answer: the trace's last stage (POPI's generator, without the
    # summarizer; HYDRA's candidates); logs written before 2026-12-02 lack per-stage counts
    staged = [t["stage_prompt_tokens"] for t in traces if t.get("stage_prompt_tokens")]
    out["answer_prompt_tokens/ex"] = sum(list(s.values())[-1] for s in staged) / len(staged) if staged else None
    out["completion_tokens/ex"] = sum(t.get("completion_tokens", 0) for t in traces) / max(n, 1)
    out["s/ex"] = sum(r.get("seconds", 0.0) for r in rows) / max(n, 1)
    out["wall_s"] = sum(r.get("seconds", 0.0) for r in rows)
    return out
