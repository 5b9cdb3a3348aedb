"""Checks on the RealLaMP files in ../shared (skipped, with the reason, when they are absent)."""

import pytest
from conftest import REALLAMP

from personalign.data.lamp_io import load_split
from personalign.eval.runner import EvalConfig, run_eval
from personalign.tasks import get_task

pytestmark = [
    pytest.mark.reallamp,
    pytest.mark.skipif(not REALLAMP.exists(), reason=f"RealLaMP data not found at {REALLAMP} (research-use data, not shipped)"),
]
SPLITS = [(t, s, p) for t in ("LaMP_2", "LaMP_3", "LaMP_5", "LaMP_6", "LaMP_7") for s in ("user", "time")
          for p in ("train", "dev") if not (t == "LaMP_7" and s == "time")]


@pytest.mark.parametrize("task,split,part", SPLITS)
def test_every_split_loads_validates_and_has_golds(task, split, part):
    examples, golds = load_split(REALLAMP, get_task(task), split, part)
    assert examples and golds is not None and set(golds) == {e.id for e in examples}
    assert all(e.profile for e in examples)


def test_user_prior_on_lamp3_dev(tmp_path):
    results = run_eval(EvalConfig(data=str(REALLAMP), task="LaMP_3", methods=["user-prior"], out=str(tmp_path)))
    prior = results["user-prior"]
    assert prior["n"] == 138 and 0 < prior["lenient"]["mae"] < 1.5
    low, high = prior["lenient"]["mae_ci"]
    assert low < prior["lenient"]["mae"] < high and high - low < 0.5
