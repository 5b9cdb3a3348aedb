"""The device job's CPU-side plumbing (bench/rpo_gpu.py): shrinking carried inputs and merging the task runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("rpo_gpu", Path(__file__).parents[1] / "bench" / "rpo_gpu.py")
rpo_gpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rpo_gpu)


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_shrink_keeps_whole_questions_with_every_control(tmp_path):
    carry = tmp_path / "carry" / "LaMP_2"
    carry.mkdir(parents=True)
    (carry / "manifest.json").write_text("{}")
    _jsonl(carry / "trajectories.jsonl", [{"i": i} for i in range(20)])
    _jsonl(carry / "rl_prompts.jsonl", [{"i": i} for i in range(20)])
    _jsonl(carry / "dev_prompts.jsonl", [{"id": f"q{i}", "control": c} for c in ("own", "other-user", "none")
                                         for i in range(10)])
    rpo_gpu.main(["shrink", "--carry", str(tmp_path / "carry"), "--out", str(tmp_path / "out"),
                  "--tasks", "LaMP_2", "--rows", "5", "--questions", "2"])
    out = tmp_path / "out" / "LaMP_2"
    dev = rpo_gpu.read_jsonl(out / "dev_prompts.jsonl")
    assert {r["id"] for r in dev} == {"q0", "q1"} and len(dev) == 6  # two questions, each under all three controls
    assert len(rpo_gpu.read_jsonl(out / "trajectories.jsonl")) == 5
    assert not (out / "val_prompts.jsonl").exists()  # no validation part carried, none made


def test_compare_merges_task_runs_and_marks_a_stopped_task(tmp_path, capsys):
    results = tmp_path / "results"
    done = {"sft": {"steps": 40, "seconds": 9.3, "tokens_per_second_steady": 15267.0},
            "rl": {"steps": 10}, "rl_median_step_s": 3.5, "rl_median_step_s_at_k_max": 2.3,
            "train_s": 51.4, "generate_s": 26.5}
    (results / "LaMP_3").mkdir(parents=True)
    (results / "LaMP_3" / "summary.json").write_text(json.dumps({"tasks": {"LaMP_3": done}, "skipped": []}))
    (results / "LaMP_5").mkdir()  # stopped by TASK_TIMEOUT: no summary
    rpo_gpu.main(["compare", "--results", str(results), "--tasks-wall", "300", "--carry", str(tmp_path),
                  "--sft-bench-steps", "0"])
    summary = json.loads((results / "summary.json").read_text())
    assert summary["tasks"]["LaMP_3"] == done
    assert summary["tasks"]["LaMP_5"] == {"error": "no summary.json"}
    assert summary["seconds"]["tasks_wall"] == 300
    table = capsys.readouterr().out
    assert "| LaMP_3 | 40 | 9.3 | 15267.0 | 10 | 3.5 | 2.3 | 51.4 | 26.5 | 77.9 |" in table


def test_sft_bench_variants_are_checked_and_measured_in_order(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        rpo_gpu.main(["compare", "--results", str(tmp_path), "--sft-bench-variants", "liger,turbo"])
    assert "unknown turbo" in capsys.readouterr().err
    measured = []
    monkeypatch.setattr(rpo_gpu, "_measured", lambda results, name, deadline, work: measured.append(name))
    rpo_gpu.sft_bench(None, [], [64, 128, 256], 2, tmp_path, deadline=0.0, variants=["liger", "compile"])
    assert measured == ["ours_64", "ours_liger_64", "ours_liger_128", "ours_liger_256", "ours_compile_64",
                        "ours_compile_128", "ours_compile_256", "ours_128", "trl_no_checkpointing_64", "trl_64",
                        "ours_256"]
