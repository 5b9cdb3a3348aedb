"""The evaluation runner: outputs, metrics, manifest, and resume after an interrupt."""

import json

import pytest
from fakes import FakeHashLLM

from personalign.data.lamp_io import write_outputs, write_questions
from personalign.engine.predictions import PredictionLog
from personalign.eval.runner import EvalConfig, run_eval
from personalign.types import Example

INPUT = "What is the score of the following review on a scale of 1 to 5? just answer with 1, 2, 3, 4, or 5 without further explanation. review: "
WORDS = "great strings tuner cable pedal noisy cheap solid loud broken bright warm".split()


def make_data(root, n=12):
    examples, golds = [], []
    for i in range(n):
        profile = [{"text": f"{WORDS[(i + j) % len(WORDS)]} {WORDS[(i * j) % len(WORDS)]} item", "score": str(1 + (i + j) % 5),
                    "id": f"{i}-{j}", "date": f"2020-01-{j + 1:02d}"} for j in range(5)]
        examples.append(Example(id=str(100 + i), input=INPUT + f"{WORDS[i % len(WORDS)]} product", profile=profile, user_id=f"u{i}"))
        golds.append((str(100 + i), str(1 + i % 5)))
    folder = root / "LaMP_3" / "user"
    folder.mkdir(parents=True)
    write_questions(folder / "dev_questions.json", examples)
    write_outputs(folder / "dev_outputs.json", "LaMP_3", golds)
    return root


def config(data, out, cache):
    return EvalConfig(data=str(data), task="LaMP_3", methods=["zero-shot", "rag", "user-prior"], out=str(out),
                      cache_dir=str(cache), retriever="bm25")


def read_outputs(run_dir, method, kind="lenient_predictions"):
    return json.loads((run_dir / f"{method}_{kind}.json").read_text())


def test_run_writes_official_outputs_metrics_and_manifest(tmp_path):
    data = make_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", tmp_path / "cache")
    results = run_eval(cfg, llm=FakeHashLLM(["1", "3 stars", "5"]))
    assert set(results) == {"zero-shot", "rag", "user-prior"}
    outputs = read_outputs(cfg.run_dir, "rag")
    assert outputs["task"] == "LaMP_3" and len(outputs["golds"]) == 12
    assert {g["output"] for g in outputs["golds"]} <= {"1", "3", "5"}
    assert {g["output"] for g in read_outputs(cfg.run_dir, "rag", "lamp_outputs")["golds"]} <= {"1", "3 stars", "5"}
    manifest = json.loads((cfg.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "done" and len(manifest["data_sha256"]) == 64
    assert manifest["config"]["method_config"]["k"] == 4
    assert "| rag |" in (cfg.run_dir / "results.md").read_text()
    row = json.loads((cfg.run_dir / "predictions" / "rag.jsonl").read_text().splitlines()[0])
    assert len(row["trace"]["retrieved_ids"]) == 4 and row["trace"]["prompt_tokens"] > 0


def test_interrupted_eval_resumes_with_identical_predictions(tmp_path):
    data = make_data(tmp_path / "data")
    answers = ["1", "2", "4", "5 stars", "three"]
    clean = config(data, tmp_path / "clean", tmp_path / "cache-clean")
    run_eval(clean, llm=FakeHashLLM(answers))

    resumed = config(data, tmp_path / "resumed", tmp_path / "cache-resumed")
    with pytest.raises(KeyboardInterrupt):
        run_eval(resumed, llm=FakeHashLLM(answers, fail_after=21))
    partial = (resumed.run_dir / "predictions" / "rag.jsonl").read_text().splitlines()
    assert 0 < len(partial) < 12
    second = FakeHashLLM(answers)
    run_eval(resumed, llm=second)
    assert second.calls == 12 - len(partial)  # only the missing predictions were computed
    for method in ("zero-shot", "rag", "user-prior"):
        assert read_outputs(resumed.run_dir, method) == read_outputs(clean.run_dir, method)
        ids = [json.loads(line)["id"] for line in (resumed.run_dir / "predictions" / f"{method}.jsonl").read_text().splitlines()]
        assert len(ids) == len(set(ids)) == 12


def test_prediction_log_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "1", "output": "a"}\n{"id": "2", "output": "b"}\n{"id": "3", "outp')
    log = PredictionLog(path)
    assert set(log.rows) == {"1", "2"}
    log.append({"id": "3", "output": "c"})
    log.append({"id": "3", "output": "duplicate ignored"})
    log.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"] and rows[2]["output"] == "c"


def test_limit_samples_deterministically(tmp_path):
    data = make_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", tmp_path / "cache")
    cfg.methods, cfg.limit = ["user-prior"], 5
    run_eval(cfg)
    first = read_outputs(cfg.run_dir, "user-prior")
    assert len(first["golds"]) == 5
    cfg.out = str(tmp_path / "out2")
    run_eval(cfg)
    assert read_outputs(cfg.run_dir, "user-prior") == first


def test_resuming_a_prediction_log_under_different_settings_is_refused(tmp_path):
    from personalign.errors import ConfigError

    data = make_data(tmp_path / "data")
    cfg = config(data, tmp_path / "out", tmp_path / "cache")
    run_eval(cfg, llm=FakeHashLLM(["4"]))
    before = (cfg.run_dir / "predictions" / "rag.jsonl").read_text()
    cfg.retriever, cfg.methods = "recency", ["rag"]
    with pytest.raises(ConfigError, match=r'rag.jsonl: made with a different retriever \("bm25" -> "recency"\)'):
        run_eval(cfg, llm=FakeHashLLM(["4"]))
    assert (cfg.run_dir / "predictions" / "rag.jsonl").read_text() == before  # nothing computed is lost
    cfg.retriever = "bm25"
    assert run_eval(cfg, llm=FakeHashLLM(["4"]))["rag"]["n"] == 12  # same settings resume fine
