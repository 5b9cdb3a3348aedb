"""Progress that tells the truth: counted in requests as they complete, an ETA from uncached work only.

Orchestration tests with FAKE backends (tests/fakes.py) and fake plans; no model runs here.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fakes import FakeHashLLM

import personalign.engine.progress as progress_module
from personalign.data.lamp_io import write_outputs, write_questions
from personalign.engine import Engine
from personalign.engine.progress import RequestProgress
from personalign.eval.runner import EvalConfig, run_eval
from personalign.tasks import get_task
from personalign.types import Answer, Completion, Example, GenParams, Request, Trace

STAGES = 3


def three_stage_plan(i: int):
    """A fake multi-stage method: three requests, one after another (like RPO: base, retrieval, reflection)."""
    text = str(i)
    for stage in range(STAGES):
        (completion,) = yield [Request([{"role": "user", "content": f"stage {stage} of {i}: {text}"}], GenParams())]
        text = completion.text
    return Answer(text, Trace())


class Recording(RequestProgress):
    """Remembers (requests done, examples finished) at every batch the engine collects."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.snapshots: list[tuple[int, int]] = []

    def completed(self, completions):
        super().completed(completions)
        self.snapshots.append((self.bar.n, self.finished_plans))


def test_a_multi_stage_method_advances_as_its_requests_complete_not_only_at_the_end():
    examples = 10
    progress = Recording(examples, "fake 3-stage", file=io.StringIO(), show_after=0)
    llm = FakeHashLLM(["a", "b", "c"])
    with progress:
        results = list(Engine({"base": llm}, window=16).run((three_stage_plan(i) for i in range(examples)), progress))
    assert len(results) == examples
    # every example is in one window, so none finishes before the last stage: an examples bar sat at 0% until then
    before_any_finished = [done for done, finished in progress.snapshots if finished == 0]
    assert before_any_finished and max(before_any_finished) >= 2 * examples  # two stages of all ten shown already
    assert progress.bar.n == progress.bar.total == STAGES * examples == llm.calls
    assert progress.finished_plans == examples


def test_the_total_is_estimated_from_started_plans_before_any_finishes():
    progress = RequestProgress(50, "estimate", file=io.StringIO(), show_after=0)
    for _ in range(10):
        progress.started()
    progress.submitted(40)  # ten plans asked for four requests each so far
    assert progress.total() == 200
    for _ in range(10):
        progress.finished(6)  # each took six requests in the end
    assert progress.total() == 300
    progress.close()


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def one_request_done(progress: RequestProgress, clock: FakeClock, at: float, cached: bool = False) -> None:
    clock.now = at
    progress.started()
    progress.submitted(1)
    progress.completed([Completion("x", cached=cached)])
    progress.finished(1)


def test_eta_ignores_the_slow_first_request_and_cache_hits():
    clock = FakeClock()
    progress = RequestProgress(20, "eta", clock=clock, file=io.StringIO(), show_after=0)
    for _ in range(8):
        one_request_done(progress, clock, at=0.0, cached=True)  # resumed from the cache: instant
    assert progress.eta_seconds() is None and "ETA ?" in progress.postfix()  # no rate measured yet
    one_request_done(progress, clock, at=30.0)  # the first uncached one waits for the model to load
    for second in (31.0, 32.0, 33.0):
        one_request_done(progress, clock, at=second)  # then one a second
    # 12 of 20 done, 8 left at the measured 1 request/s; elapsed/done (33 s / 12) would say 22 s
    assert progress.eta_seconds() == pytest.approx(8.0)
    assert "ETA 00:08" in progress.postfix() and "12/20 examples" in progress.postfix() and "8 cached" in progress.postfix()
    progress.close()


def rating_split(root: Path, n: int = 6) -> Path:
    task = get_task("LaMP_3")
    questions = [Example(id=str(i), input=task.format_input(f"product {i}"), user_id=f"u{i}",
                         profile=[{"text": f"item {i} {j}", "score": str(1 + j % 5), "id": f"{i}-{j}"} for j in range(4)])
                 for i in range(n)]
    folder = root / "LaMP_3" / "user"
    folder.mkdir(parents=True)
    write_questions(folder / "dev_questions.json", questions)
    write_outputs(folder / "dev_outputs.json", "LaMP_3", [(str(i), "3") for i in range(n)])
    return root


def test_eval_shows_a_request_bar_for_a_two_stage_method(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "SHOW_AFTER_SECONDS", 0)
    data = rating_split(tmp_path / "data")
    config = EvalConfig(data=str(data), task="LaMP_3", methods=["pag", "user-mean"], out=str(tmp_path / "out"),
                        cache_dir=str(tmp_path / "cache"))
    run_eval(config, llm=FakeHashLLM(["3", "4"]))
    err = capsys.readouterr().err
    assert "LaMP_3 pag: 100%" in err and "12/12 requests" in err and "6/6 examples" in err  # summary + answer each
    assert "LaMP_3 user-mean: 100%" in err and "6/6 examples" in err  # no LLM: counted in examples


def test_references_that_need_a_train_split_are_skipped_in_one_line(tmp_path, capsys):
    data = rating_split(tmp_path / "data")
    config = EvalConfig(data=str(data), task="LaMP_3", methods=["references"], out=str(tmp_path / "out"),
                        cache_dir=str(tmp_path / "cache"), profile_controls=["own", "other-user"])
    run_eval(config)
    lines = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert len(lines) == 1, lines
    assert "population-majority" in lines[0] and "tfidf-linear" in lines[0] and "train split" in lines[0]
