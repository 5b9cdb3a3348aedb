"""Official LaMP metric semantics, checked against hand-worked numbers."""

import math

import pytest

from personalign.tasks import get_task
from personalign.tasks.metrics import compute_metrics, example_score, rating_value


def test_classification_out_of_set_prediction_is_wrong_and_macro_f1_over_label_list():
    labels = ("a", "b", "c")
    from personalign.tasks.metrics import classification_metrics

    result = classification_metrics(["a", "c", "x", "a"], ["a", "b", "c", "a"], labels)
    assert result["accuracy"] == pytest.approx(0.5)
    # label a: F1 1; label b: 0 (missed); label c: 0 (one false positive, one miss) -> macro 1/3
    assert result["f1"] == pytest.approx(1 / 3)


def test_classification_labels_absent_from_both_sides_count_as_zero_f1():
    from personalign.tasks.metrics import classification_metrics

    result = classification_metrics(["a", "a"], ["a", "a"], ("a", "b", "c"))
    assert result["accuracy"] == 1.0
    assert result["f1"] == pytest.approx(1 / 3)


def test_lamp2_uses_its_fifteen_tags():
    task = get_task("LaMP_2")
    assert len(task.labels) == 15
    result = compute_metrics(task, ["comedy", "Comedy"], ["comedy", "comedy"])
    assert result["accuracy"] == 0.5  # metric itself is case-sensitive; parsing canonicalises case


def test_rating_unparseable_becomes_farthest_end_and_no_clipping():
    task = get_task("LaMP_3")
    result = compute_metrics(task, ["2", "4.5", "x", "7"], ["1", "5", "3", "2"])
    # errors: 1, 0.5, gold 3 unparseable -> tie between 1 and 5 -> 5 (error 2), 7 -> error 5
    assert result["mae"] == pytest.approx((1 + 0.5 + 2 + 5) / 4)
    assert result["rmse"] == pytest.approx(math.sqrt((1 + 0.25 + 4 + 25) / 4))


@pytest.mark.parametrize("gold,expected", [("1", 5.0), ("2", 5.0), ("4", 1.0), ("5", 1.0), ("3", 5.0)])
def test_rating_value_farthest_end(gold, expected):
    assert rating_value("not a number", gold) == expected
    assert rating_value("nan", gold) == expected


def test_rouge_matches_hand_computation():
    task = get_task("LaMP_5")
    result = compute_metrics(task, ["the cat sat"], ["the cat sat on the mat"])
    assert result["rouge-1"] == pytest.approx(2 / 3)
    assert result["rouge-L"] == pytest.approx(2 / 3)
    swapped = compute_metrics(task, ["mat the"], ["the mat"])
    assert swapped["rouge-1"] == pytest.approx(1.0)
    assert swapped["rouge-L"] == pytest.approx(0.5)


def test_rouge_strips_whitespace_and_averages_over_examples():
    task = get_task("LaMP_7")
    result = compute_metrics(task, ["  hello world \n", "nothing"], ["hello world", "else entirely"])
    assert result["rouge-1"] == pytest.approx(0.5)


def test_example_score_direction():
    assert example_score(get_task("LaMP_2"), "comedy", "comedy") == 1.0
    assert example_score(get_task("LaMP_3"), "4", "5") == -1.0
    assert example_score(get_task("LaMP_5"), "a b", "a b") == pytest.approx(1.0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        compute_metrics(get_task("LaMP_3"), ["1"], ["1", "2"])
