"""Harness v2: the request engine, raw logs and rescoring, run keys, profile controls, references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeHashLLM

from personalign.backends import model_file_id
from personalign.backends.base import LLM
from personalign.data.lamp_io import write_outputs, write_questions
from personalign.engine import Engine, answer_requests
from personalign.errors import ConfigError
from personalign.eval.report import control_rows, pair, verdict_rows
from personalign.eval.rescore import rescore, score_run
from personalign.eval.runner import EvalConfig, run_eval
from personalign.tasks import get_task
from personalign.types import Completion, Example, GenParams, Messages, Request

LAMP2, LAMP3 = get_task("LaMP_2"), get_task("LaMP_3")
TAGS = ["comedy", "action", "romance", "fantasy"]


def latency_server():
    from bench.latency_server import FakeLatencyServer

    return FakeLatencyServer


def tag_data(root: Path, users: int = 12) -> Path:
    """LaMP_2 questions where each user always uses one tag, and the gold is that tag: the history decides."""
    questions, golds = [], []
    for u in range(users):
        tag = TAGS[u % len(TAGS)]
        profile = [{"description": f"a film number {u}.{j}", "tag": tag, "id": f"{u}.{j}"} for j in range(4)]
        questions.append(Example(id=f"q{u}", input=LAMP2.format_input(f"a new film {u}"), profile=profile,
                                 user_id=f"u{u}"))
        golds.append((f"q{u}", tag))
    for part in ("dev", "train"):
        folder = root / "LaMP_2" / "user"
        folder.mkdir(parents=True, exist_ok=True)
        write_questions(folder / f"{part}_questions.json", questions)
        write_outputs(folder / f"{part}_outputs.json", "LaMP_2", golds)
    return root


def rating_data(root: Path, n: int = 10, shift: int = 0) -> Path:
    questions, golds = [], []
    for i in range(n):
        profile = [{"text": f"item {i} {j}", "score": str(1 + (i + j) % 5), "id": f"{i}-{j}"} for j in range(4)]
        questions.append(Example(id=str(i), input=LAMP3.format_input(f"product {i}"), profile=profile, user_id=f"u{i}"))
        golds.append((str(i), str(1 + (i + shift) % 5)))
    folder = root / "LaMP_3" / "user"
    folder.mkdir(parents=True, exist_ok=True)
    write_questions(folder / "dev_questions.json", questions)
    write_outputs(folder / "dev_outputs.json", "LaMP_3", golds)
    return root


def config(data: Path, out: Path, methods, task="LaMP_3", **kwargs) -> EvalConfig:
    return EvalConfig(data=str(data), task=task, methods=list(methods), out=str(out), cache_dir=str(out / "cache"),
                      **kwargs)


# ---------------------------------------------------------------- engine


class FakeBatchRecorder(LLM):
    """A FAKE backend: answers with the prompt's last word and records each batch it receives."""

    def __init__(self):
        self.name, self.batches = "fake-recorder", []

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        return Completion(messages[-1]["content"].split()[-1], 1, 1)

    def chat_batch(self, batch, params=None):
        self.batches.append(len(batch))
        return super().chat_batch(batch, params)


def two_stage_plan(i: int):
    (first,) = yield [Request([{"role": "user", "content": f"first {i}"}], GenParams())]
    second = yield [Request([{"role": "user", "content": f"then {first.text}x"}], GenParams()),
                    Request([{"role": "user", "content": f"also {i}"}], GenParams(max_tokens=5))]
    from personalign.types import Answer, Trace

    return Answer(f"{first.text}/{second[0].text}/{second[1].text}", Trace())


def test_engine_batches_stages_across_examples_and_keeps_input_order():
    llm = FakeBatchRecorder()
    results = list(Engine({"base": llm}, window=8).run(two_stage_plan(i) for i in range(10)))
    assert [index for index, _, _ in results] == list(range(10))
    assert [a.raw for _, a, _ in results] == [f"{i}/{i}x/{i}" for i in range(10)]
    # round 1: 8 first-stage requests in one batch; later rounds mix stages but group by parameters
    assert llm.batches[0] == 8 and max(llm.batches) == 8 and sum(llm.batches) == 30


def test_answer_requests_refuses_an_unknown_backend():
    with pytest.raises(ConfigError, match="backend 'reflection'"):
        answer_requests([Request([{"role": "user", "content": "x"}], GenParams(), llm="reflection")], {})


def test_greedy_concurrent_output_equals_sequential_output(tmp_path):
    data = rating_data(tmp_path / "data", n=24)
    with latency_server()(latency=0.02, max_requests=500, max_seconds=120) as url:
        outputs = {}
        for concurrency in (1, 8):
            cfg = config(data, tmp_path / f"c{concurrency}", ["zero-shot", "rag"], llm="openai:fake",
                         llm_options={"base_url": url}, concurrency=concurrency)
            run_eval(cfg)
            for method in ("zero-shot", "rag"):
                rows = [json.loads(line) for line in (cfg.run_dir / "predictions" / f"{method}.jsonl").open()]
                assert [r["id"] for r in rows] == [str(i) for i in range(24)]  # file order
                outputs[concurrency, method] = [(r["id"], r["raw"]) for r in rows]
    assert outputs[1, "zero-shot"] == outputs[8, "zero-shot"] and outputs[1, "rag"] == outputs[8, "rag"]


# ---------------------------------------------------------------- raw logs and rescoring


def test_rescoring_after_a_parser_change_gives_new_metrics_with_zero_llm_calls(tmp_path, monkeypatch):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", ["zero-shot"])
    before = run_eval(cfg, llm=FakeHashLLM(["Rating: 4 stars", "I'd say 2.", "5"]))["zero-shot"]
    rows = [json.loads(line) for line in (cfg.run_dir / "predictions" / "zero-shot.jsonl").open()]
    assert {r["raw"] for r in rows} <= {"Rating: 4 stars", "I'd say 2.", "5"}  # raw text, not parsed output
    assert "output" not in rows[0] and rows[0]["filter"] == "plain"

    import personalign.backends as backends
    import personalign.tasks.filters as filters

    monkeypatch.setattr(backends, "get_llm", lambda *a, **k: pytest.fail("rescore must not build an LLM"))
    monkeypatch.setattr(filters, "parse_output", lambda task, raw, source=None: "1")  # a "parser fix"
    (after_dir,) = rescore(tmp_path / "out")
    after = json.loads((after_dir / "metrics.json").read_text())["zero-shot"]
    assert after["lenient"]["mae"] != before["lenient"]["mae"]
    assert after["official"] == before["official"]  # official scoring never used the parser
    golds = json.loads((after_dir / "zero-shot_lenient_predictions.json").read_text())["golds"]
    assert {g["output"] for g in golds} == {"1"}


class FakeFileModel(FakeHashLLM):
    """A FAKE backend whose identity is a model file's content, as llama.cpp's is."""

    def __init__(self, path: Path):
        super().__init__(["3"])
        self.name = f"fake:{model_file_id(path)}"


@pytest.mark.parametrize("change, named", [
    ("data", "data_sha256"), ("model", "models"), ("seed", "seed"), ("limit", "limit"), ("config", "method_config"),
])
def test_resuming_under_a_changed_key_is_refused_and_keeps_the_rows(tmp_path, change, named):
    data = rating_data(tmp_path / "data")
    model = tmp_path / "model.gguf"
    model.write_bytes(b"weights v1")
    cfg = config(data, tmp_path / "out", ["rag"], limit=6)
    run_eval(cfg, llm=FakeFileModel(model))
    log = cfg.run_dir / "predictions" / "rag.jsonl"
    before = log.read_text()
    if change == "data":
        rating_data(tmp_path / "data", shift=1)  # golds edited in place
    elif change == "model":
        model.write_bytes(b"weights v2")  # retrained at the same path
    elif change == "seed":
        cfg.seed = 1
    elif change == "limit":
        cfg.limit = 7
    else:
        cfg.method_config.k = 2
    # the run's seed is the methods' seed too: changing it changes both
    with pytest.raises(ConfigError, match=rf"rag.jsonl: made with a different (method_config \(seed: 0 -> 1\); )?{named} \(") as error:
        run_eval(cfg, llm=FakeFileModel(model))
    assert len(str(error.value).splitlines()) == 1 and "delete rag.jsonl and rag.key.json" in str(error.value)
    assert log.read_text() == before


def test_transport_options_do_not_block_resuming(tmp_path):
    data = rating_data(tmp_path / "data")
    with latency_server()(latency=0.0, max_requests=100, max_seconds=60) as url:
        cfg = config(data, tmp_path / "out", ["zero-shot"], llm="openai:fake", llm_options={"base_url": url})
        run_eval(cfg)
        cfg.llm_options = {"base_url": url, "timeout": 5.0, "max_retries": 1}
        cfg.concurrency = 2
        assert run_eval(cfg)["zero-shot"]["n"] == 10


def test_a_second_writer_of_the_same_log_is_refused(tmp_path):
    from personalign.engine.predictions import PredictionLog

    path = tmp_path / "p" / "rag.jsonl"
    with PredictionLog(path):
        with pytest.raises(ConfigError, match="being written by another process"):
            PredictionLog(path)
    PredictionLog(path).close()  # free again once the first writer is done


def test_damaged_state_files_are_one_line_errors_or_repaired(tmp_path):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", ["user-prior"])
    run_eval(cfg)
    log = cfg.run_dir / "predictions" / "user-prior.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "[1, 2]", "{not json", *lines[3:]]) + "\n")  # two damaged rows
    assert run_eval(cfg)["user-prior"]["n"] == 10  # the two rows were recomputed, the rest kept
    key = log.with_suffix(".key.json")
    key.write_text("")
    with pytest.raises(ConfigError, match="user-prior.key.json is damaged"):
        run_eval(cfg)
    key.unlink()
    with pytest.raises(ConfigError, match="has rows but no user-prior.key.json"):
        run_eval(cfg)
    cache = tmp_path / "cache.sqlite"
    cache.write_bytes(b"this is not a database" * 100)
    from personalign.store import SqliteStore

    with pytest.raises(ConfigError, match="cache.sqlite is damaged .* delete it"):
        SqliteStore(cache)


def test_empty_completions_are_not_cached_and_are_counted(tmp_path):
    from personalign.backends._cached import CachedLLM

    inner = FakeHashLLM([""])
    llm = CachedLLM(inner, tmp_path / "llm.sqlite")
    llm.chat([{"role": "user", "content": "x"}])
    llm.chat([{"role": "user", "content": "x"}])
    assert inner.calls == 2  # asked again: an empty answer is never replayed from the cache
    data = rating_data(tmp_path / "data")
    result = run_eval(config(data, tmp_path / "out", ["zero-shot"]), llm=FakeHashLLM([""]))["zero-shot"]
    assert result["empty_rate"] == 1.0


# ---------------------------------------------------------------- references, controls, paired tests


def test_profile_controls_show_that_the_history_decides(tmp_path):
    data = tag_data(tmp_path / "data", users=24)  # paired tests need n >= MIN_QUESTIONS_FOR_TESTS
    cfg = config(data, tmp_path / "out", ["user-majority", "population-majority"], task="LaMP_2",
                 profile_controls=["own", "other-user", "none"])
    results = run_eval(cfg)
    assert results["user-majority"]["lenient"]["accuracy"] == 1.0
    assert results["user-majority#none"]["lenient"]["accuracy"] == 0.0
    other = results["user-majority#other-user"]["lenient"]["accuracy"]
    assert other < 0.5  # another user's history gives another user's tag (a different tag for 3 of 4 users)
    assert results["population-majority"]["lenient"]["accuracy"] == pytest.approx(3 / 12)
    assert results["population-majority#other-user"]["lenient"]["accuracy"] == pytest.approx(3 / 12)
    rows = {(r["method"], r["control"]): r for r in control_rows(LAMP2, cfg.run_dir, results)}
    assert rows["user-majority", "other-user"]["reads the user"] == "yes" and rows["user-majority", "other-user"]["p"] < 0.05
    assert rows["population-majority", "other-user"]["reads the user"] == "no evidence"
    assert rows["population-majority", "other-user"]["p"] == 1.0
    assert rows["user-majority", "none"]["reads the user"] == "yes"
    # the other user is drawn with the seed: the same run again gives the same rows
    again = config(data, tmp_path / "again", ["user-majority"], task="LaMP_2", profile_controls=["other-user"])
    assert run_eval(again)["user-majority#other-user"]["lenient"]["accuracy"] == other


def test_a_history_that_hurts_is_named_so():
    from personalign.eval.report import reads_the_user
    from personalign.tasks.statistics import paired_test

    worse_with_history = paired_test("accuracy", np.zeros((40, 1)), np.ones((40, 1)))
    assert reads_the_user(worse_with_history) == "history hurts"
    assert reads_the_user(paired_test("accuracy", np.ones((40, 1)), np.zeros((40, 1)))) == "yes"


def test_best_reference_and_verdicts(tmp_path):
    data = tag_data(tmp_path / "data", users=24)  # paired tests need n >= MIN_QUESTIONS_FOR_TESTS
    cfg = config(data, tmp_path / "out", ["references", "zero-shot"], task="LaMP_2")
    results = run_eval(cfg, llm=FakeHashLLM(["comedy"]))
    assert "echo" not in results and "user-mean" not in results  # references that do not fit LaMP_2 are left out
    (row,) = verdict_rows(LAMP2, cfg.run_dir, results)
    assert row["method"] == "zero-shot" and row["best reference"] in ("user-majority", "user-prior", "nearest-output")
    assert row["verdict"].startswith("loses to") and row["p"] < 0.05
    test = pair(LAMP2, cfg.run_dir, "user-majority", "user-prior")[0]
    assert test.diff.value == 0 and test.p_value == 1.0
    assert "★ best reference" in (cfg.run_dir / "results.md").read_text()


def test_score_run_refuses_a_log_of_another_task(tmp_path):
    data = rating_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", ["user-prior"])
    run_eval(cfg)
    with pytest.raises(ConfigError, match="belongs to task LaMP_3"):
        score_run(cfg.run_dir, LAMP2)


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": -1}, {"concurrency": 0}, {"workers": 0},
                                 {"profile_controls": ["someone"]}, {"methods": []}])
def test_bad_eval_settings_are_refused(tmp_path, bad):
    with pytest.raises(ConfigError):
        EvalConfig(**{"data": "d", "task": "LaMP_3", "methods": ["zero-shot"], **bad})


def test_empty_questions_file_is_refused(tmp_path):
    folder = tmp_path / "LaMP_3" / "user"
    folder.mkdir(parents=True)
    write_questions(folder / "dev_questions.json", [])
    write_outputs(folder / "dev_outputs.json", "LaMP_3", [])
    with pytest.raises(ConfigError, match="has no questions"):
        run_eval(config(tmp_path, tmp_path / "out", ["user-prior"]))


class FakeRecordingLLM(FakeHashLLM):
    """A FAKE backend that keeps every prompt it is sent."""

    def __init__(self, answers):
        super().__init__(answers)
        self.seen: list[str] = []

    def _generate(self, messages, params):
        self.seen.extend(m["content"] for m in messages)
        return super()._generate(messages, params)


def test_the_gold_in_the_data_files_never_reaches_any_prompt(tmp_path):
    """The runner reads golds from the outputs file; no method's request may contain them."""
    lamp5 = get_task("LaMP_5")
    folder = tmp_path / "data" / "LaMP_5" / "user"
    folder.mkdir(parents=True)
    papers = [{"title": f"Old paper {j}", "abstract": f"we study topic {j}", "id": f"p{j}"} for j in range(5)]
    examples = [Example(id=str(i), input=lamp5.format_input(f"we study topic {i} again"), profile=papers, user_id="u")
                for i in range(4)]
    write_questions(folder / "dev_questions.json", examples)
    write_outputs(folder / "dev_outputs.json", "LaMP_5", [(str(i), f"GOLD-SENTINEL-{i}") for i in range(4)])
    llm = FakeRecordingLLM(["A title", "<think>t</think><personalized>B title</personalized>"])
    methods = ["zero-shot", "icl", "rag", "pag", "cot-zero-shot", "cot-rag", "cot-pag"]
    results = run_eval(config(tmp_path / "data", tmp_path / "out", methods, task="LaMP_5"), llm=llm)
    assert set(results) == set(methods) and len(llm.seen) > 4 * len(methods)
    assert not [p for p in llm.seen if "GOLD-SENTINEL" in p]
    rows = [json.loads(line) for line in (tmp_path / "out" / "LaMP_5" / "user-dev" / "predictions" / "rag.jsonl").open()]
    assert {r["gold"] for r in rows} == {f"GOLD-SENTINEL-{i}" for i in range(4)}  # the runner did have the golds


@pytest.mark.model
def test_llamacpp_workers_give_the_sequential_greedy_outputs(tmp_path):
    examples = Path(__file__).resolve().parents[1] / "personalign" / "data" / "examples"
    raws = {}
    for workers in (1, 2):
        cfg = EvalConfig(data=str(examples), task="LaMP_7", methods=["zero-shot", "rag"], out=str(tmp_path / f"w{workers}"),
                         cache_dir=str(tmp_path / f"cache{workers}"), llm="llamacpp", workers=workers,
                         llm_options={"n_threads": 1})
        run_eval(cfg)
        for method in ("zero-shot", "rag"):
            rows = [json.loads(line) for line in (cfg.run_dir / "predictions" / f"{method}.jsonl").open()]
            raws[workers, method] = [(r["id"], r["raw"]) for r in rows]
    assert raws[1, "zero-shot"] == raws[2, "zero-shot"] and raws[1, "rag"] == raws[2, "rag"]
    assert all(raw.strip() for _, raw in raws[1, "rag"])


def test_rows_on_different_example_sets_are_flagged_not_merged(tmp_path):
    data = rating_data(tmp_path / "data")
    run_eval(config(data, tmp_path / "out", ["user-mean"], limit=5))
    cfg = config(data, tmp_path / "out", ["user-median"])
    results = run_eval(cfg)
    assert results["user-median"]["n"] == 10
    assert json.loads((cfg.run_dir / "metrics.json").read_text())["user-mean"]["n"] == 5
    text = (cfg.run_dir / "results.md").read_text()
    assert "different example sets" in text and "(n=5): user-mean" in text
    assert pair(LAMP3, cfg.run_dir, "user-mean", "user-median")[0].n == 5  # paired on the shared examples
    from personalign.eval.report import cross_task_table

    table = cross_task_table({"LaMP_3": results_all(cfg)}, {"LaMP_3": LAMP3})
    assert "(n=5 of 10)" in table and "(n=10" not in table


def results_all(cfg):
    return json.loads((cfg.run_dir / "metrics.json").read_text())
