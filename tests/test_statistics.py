"""Bootstrap intervals, paired tests, and parity of both scoring modes with LaMP's official evaluation."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import f1_score

from personalign.eval.scoring import official_rouge, score_rows, summarize
from personalign.tasks import get_task
from personalign.tasks.filters import apply_filter
from personalign.tasks.metrics import compute_metrics
from personalign.tasks.statistics import aggregate, bootstrap_interval, example_stats, paired_test

LAMP2, LAMP3, LAMP5 = get_task("LaMP_2"), get_task("LaMP_3"), get_task("LaMP_5")


def rows(raws, golds, filter_name="plain"):
    return [{"id": str(i), "raw": r, "gold": g, "filter": filter_name, "trace": {}} for i, (r, g) in enumerate(zip(raws, golds))]


def test_per_example_statistics_reproduce_the_official_point_metrics():
    rng = random.Random(0)
    labels = list(LAMP2.labels)
    preds = [rng.choice(labels + ["not a tag"]) for _ in range(80)]
    golds = [rng.choice(labels[:6]) for _ in range(80)]
    for metric in ("accuracy", "f1"):
        stats = example_stats(LAMP2, metric, preds, golds)
        assert aggregate(metric, stats.sum(axis=0), len(preds)) == pytest.approx(compute_metrics(LAMP2, preds, golds)[metric])
    pred_ids = [labels.index(p) if p in labels else -1 for p in preds]
    gold_ids = [labels.index(g) for g in golds]
    sk = f1_score(gold_ids, pred_ids, labels=list(range(len(labels))), average="macro", zero_division=0)
    assert aggregate("f1", example_stats(LAMP2, "f1", preds, golds).sum(axis=0), 80) == pytest.approx(sk)
    ratings = [str(rng.choice([1, 2, 3, 4, 5, "x"])) for _ in range(50)]
    truth = [str(rng.randint(1, 5)) for _ in range(50)]
    for metric in ("mae", "rmse"):
        stats = example_stats(LAMP3, metric, ratings, truth)
        assert aggregate(metric, stats.sum(axis=0), 50) == pytest.approx(compute_metrics(LAMP3, ratings, truth)[metric])


def test_bootstrap_interval_brackets_the_value_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 2, 20).astype(float)[:, None]
    large = rng.integers(0, 2, 2000).astype(float)[:, None]
    a, b = bootstrap_interval("accuracy", small), bootstrap_interval("accuracy", large)
    assert a.low <= a.value <= a.high and b.low <= b.value <= b.high
    assert (b.high - b.low) < (a.high - a.low) / 5
    # for a mean of 0/1 values the percentile interval is close to the normal one
    p = b.value
    assert b.high - b.low == pytest.approx(2 * 1.96 * (p * (1 - p) / 2000) ** 0.5, rel=0.15)
    assert bootstrap_interval("accuracy", small, seed=3) == bootstrap_interval("accuracy", small, seed=3)


def test_paired_test_detects_a_real_difference_and_not_a_fake_one():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 150)
    good = np.where(rng.random(150) < 0.8, truth, 1 - truth)
    bad = np.where(rng.random(150) < 0.55, truth, 1 - truth)
    stats_good = (good == truth).astype(float)[:, None]
    stats_bad = (bad == truth).astype(float)[:, None]
    test = paired_test("accuracy", stats_good, stats_bad)
    assert test.p_value < 0.01 and test.a_better and test.diff.low > 0
    same = paired_test("accuracy", stats_good, stats_good)
    assert same.p_value == 1.0 and not same.a_better and same.diff.value == 0
    lower = paired_test("mae", np.ones((30, 1)), np.full((30, 1), 2.0))
    assert lower.a_better and lower.diff.value == -1.0  # lower MAE is better
    with pytest.raises(ValueError, match="same examples"):
        paired_test("accuracy", stats_good, stats_good[:10])


# ---------------------------------------------------------------- official parity (LaMP eval/evaluation.py)

@pytest.mark.parametrize("raw, gold, lenient, official", [
    ("comedy", "comedy", 1.0, 1.0),
    ("  comedy \n", "comedy", 1.0, 1.0),   # the official script strips
    ("Tag: comedy", "comedy", 1.0, 0.0),   # ...and parses nothing
    ("comedy.", "comedy", 1.0, 0.0),
    ("Comedy", "comedy", 1.0, 0.0),        # the label lookup is case-sensitive
])
def test_classification_parity(raw, gold, lenient, official):
    scored = {mode: score_rows(LAMP2, rows([raw], [gold]), mode) for mode in ("lenient", "official")}
    assert scored["lenient"].stats["accuracy"][0, 0] == lenient
    assert scored["official"].stats["accuracy"][0, 0] == official


@pytest.mark.parametrize("raw, gold, lenient_error, official_error", [
    ("4", "4", 0.0, 0.0),
    (" 4 ", "5", 1.0, 1.0),
    ("4 stars", "4", 0.0, 3.0),     # official: float("4 stars") fails -> the end farthest from 4 is 1
    ("Rating: 2", "5", 3.0, 4.0),   # farthest end from 5 is 1
    ("4.5", "4", 0.5, 0.5),
    ("7", "5", 2.0, 2.0),           # a bare number is taken as it is, in both modes
])
def test_rating_parity(raw, gold, lenient_error, official_error):
    for mode, error in (("lenient", lenient_error), ("official", official_error)):
        assert score_rows(LAMP3, rows([raw], [gold]), mode).stats["mae"][0, 0] == error


def test_generation_parity_uses_the_bootstrap_aggregated_rouge():
    from rouge_score import rouge_scorer, scoring

    preds = ["Neural parsing of tweets", "  A study of parsing ", "Title: Graph networks", "x"]
    golds = ["Parsing tweets with neural networks", "A study of parsing", "Graph neural networks", "y z"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
    aggregator = scoring.BootstrapAggregator()
    for p, g in zip(preds, golds):
        aggregator.add_scores(scorer.score_multi([g.strip()], p.strip()))
    np.random.seed(0)
    expected = aggregator.aggregate()
    got = official_rouge(preds, golds)
    assert got["rouge-1"] == pytest.approx(expected["rouge1"].mid.fmeasure)
    assert got["rouge-L"] == pytest.approx(expected["rougeL"].mid.fmeasure)
    mean = summarize(LAMP5, rows(preds, golds))["official"]["rouge-1"]
    assert mean == pytest.approx(got["rouge-1"])
    lenient = summarize(LAMP5, rows(preds, golds))["lenient"]["rouge-1"]
    assert lenient > mean  # "Title: " is dropped by the lenient parser only


def test_filters_extract_structure_before_either_mode():
    trace = {"stages": ["base", "reflect"], "raw_outputs": ["3", "<think>x</think><personalized>Score: 5</personalized>"]}
    good = "<think>lenient</think><personalized>Score: 5</personalized>"
    assert apply_filter(LAMP3, "rpo", good, trace).prediction == "5"
    assert apply_filter(LAMP3, "rpo", good, trace, "official").prediction == "Score: 5"
    broken = apply_filter(LAMP3, "rpo", "<think>never closed", trace, "official")
    assert broken.fallback and broken.prediction == "3"  # the base answer
    assert apply_filter(LAMP3, "cot", "The user is kind.\nAnswer: 4", None, "official").prediction == "4"
    assert apply_filter(LAMP5, "exact", "  Echoed title\nsecond line ", None).prediction == "Echoed title\nsecond line"
