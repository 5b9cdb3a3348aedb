"""The device job's CPU-side plumbing (experiments/rpo_gpu.py): shrinking carried inputs and merging the task runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import rpo_gpu


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


def test_sft_bench_measures_every_variant_at_every_batch_size_with_its_options(tmp_path, monkeypatch, capsys):
    import personalign.train.sft as sft_module
    from personalign.train.sft import SFTConfig

    with pytest.raises(SystemExit):
        rpo_gpu.main(["compare", "--results", str(tmp_path), "--sft-bench-variants", "liger,turbo"])
    assert "unknown turbo" in capsys.readouterr().err

    built = {}  # our trainer's sft options, by the output folder each measurement names

    class RecordingSFTTrainer:  # a fake: records the options a measurement trains with, trains nothing
        def __init__(self, sft, records, out_dir):
            built[Path(out_dir).name] = sft
            self.examples = len(records)

        def train(self, resume=True):
            return {"steps": 2, "examples": self.examples}

    measured = []

    def measured_ours_only(results, name, deadline, work):  # raw TRL would load a real model: named, not run
        measured.append(name)
        if name.startswith("ours_"):
            results[name] = work()

    monkeypatch.setattr(sft_module, "SFTTrainer", RecordingSFTTrainer)
    monkeypatch.setattr(rpo_gpu, "_measured", measured_ours_only)
    config = type("Config", (), {"sft": SFTConfig()})()
    rpo_gpu.sft_bench(config, [{"i": i} for i in range(4)], [64, 128, 256], 2, tmp_path, deadline=0.0,
                      variants=["liger", "compile"])
    sizes = (64, 128, 256)
    expected = ({f"ours_{n}" for n in sizes} | {f"ours_liger_{n}" for n in sizes} | {f"ours_compile_{n}" for n in sizes}
                | {"trl_no_checkpointing_64", "trl_64"})
    assert sorted(measured) == sorted(expected)  # each once: no variant or batch size left out or repeated
    assert measured[-1] == "ours_256"  # the largest batch, which may not fit the GPU, runs last
    for size in sizes:
        plain, liger, compiled = (built[f"sft-bench-{name}_{size}"] for name in ("ours", "ours_liger", "ours_compile"))
        assert plain.batch_size == liger.batch_size == compiled.batch_size == size
        assert not plain.liger_kernel and not plain.torch_compile
        assert liger.liger_kernel and not liger.torch_compile
        assert compiled.torch_compile and not compiled.liger_kernel and compiled.pad_to_multiple_of == 128


def test_a_measurement_past_the_deadline_or_failing_does_not_stop_the_next(capsys):
    results = {}
    rpo_gpu._measured(results, "late", deadline=0.0, work=lambda: {"never": "run"})
    rpo_gpu._measured(results, "oom", deadline=float("inf"), work=lambda: 1 / 0)
    rpo_gpu._measured(results, "fine", deadline=float("inf"), work=lambda: {"tokens_per_second": 5.0})
    assert results["late"] == {"skipped": "over the budget"}
    assert results["oom"]["error"].startswith("ZeroDivisionError")
    assert results["fine"]["tokens_per_second"] == 5.0
