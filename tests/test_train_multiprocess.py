"""Multi-process training, shown: real ``accelerate launch`` runs with 2 CPU processes (gloo) against 1.

One RL step (4 prompts; 2 a process) and one SFT step (batch 4; 2 a process) must give the same gradients
and logs on 2 processes as on 1; an RL run stopped after step 1's checkpoint and resumed under 2 processes
must end where an uninterrupted one does. The model is a tiny random Llama (2 layers, hidden 64) with the
bundled tokenizer: equivalence needs no trained model. ``tests/multiprocess_worker.py`` is what each
process runs.

On CPU, accelerate's ``--cpu`` launch starts one process whatever ``--num_processes`` says; several CPU
processes come from its torchrun launcher (``--multi_gpu``) with ``ACCELERATE_USE_CPU=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from netutil import free_port

WORKER = Path(__file__).with_name("multiprocess_worker.py")
RL_STEP_PROMPTS = [2, 3, 4, 0]  # epoch_order(5 prompts, epoch 1, seed 0)[:4]: prompt 3's rewards tie


def _tiny_model(where: Path) -> Path:
    """A 2-layer Llama with hidden size 64 and the bundled tokenizer; ~10% of the vocabulary ends a completion,
    so completions differ in length (a random model almost never samples the one real EOS)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from personalign.train.model_io import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("bundled"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *range(1000, 6000)]
    model.save_pretrained(where)
    tokenizer.save_pretrained(where)
    return where


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """The worker launched with 1 process and with 2 (the latter also runs the resume check), side by side."""
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("accelerate's launcher is not installed (pip install -e '.[train]')")
    root = tmp_path_factory.mktemp("multiprocess")
    model = _tiny_model(root / "tiny")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    launches = {1: ["--cpu", "--num_processes", "1"],
                2: ["--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())]}
    running = {}
    for processes, flags in launches.items():
        out = root / f"p{processes}"
        out.mkdir()
        extra = ["--resume"] if processes == 2 else []
        running[processes] = (out, subprocess.Popen([launcher, "launch", *flags, str(WORKER), str(model), str(out), *extra],
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
    for processes, (out, process) in running.items():
        try:
            output, _ = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        (out / "launch.log").write_text(output)
        assert process.returncode == 0, f"{processes} process(es): {output[-3000:]}"
    return {processes: out for processes, (out, _) in running.items()}


def _max_diff(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> tuple[float, float]:
    """The largest absolute difference over every weight's gradient, and the largest gradient entry."""
    assert first.keys() == second.keys() and first
    return (max(float((first[k] - second[k]).abs().max()) for k in first),
            max(float(first[k].abs().max()) for k in first))


def test_rl_step_on_two_processes_shards_the_prompts_and_equals_one_process(runs):
    one, two = torch.load(runs[1] / "rl.pt"), torch.load(runs[2] / "rl.pt")
    shards = [json.loads((runs[2] / f"rl_sampled_{rank}.json").read_text()) for rank in (0, 1)]
    assert shards == [RL_STEP_PROMPTS[0::2], RL_STEP_PROMPTS[1::2]]  # whole groups, each prompt on one process
    assert json.loads((runs[1] / "rl_sampled_0.json").read_text()) == RL_STEP_PROMPTS
    assert len(one["grads"]) == len(two["grads"]) == 2  # updates_per_batch = 2
    for update, (grads_one, grads_two) in enumerate(zip(one["grads"], two["grads"])):
        diff, largest = _max_diff(grads_one, grads_two)
        assert largest > 1e-3 and diff < 1e-6 * max(1.0, largest), (update, diff, largest)
    [row_one], [row_two] = one["log"], two["log"]  # one step, logged once (the first process writes)
    for key in ("tokens_generated", "zero_variance_share", "updated", "nonfinite_grad_updates", "prompt_tokens_mean"):
        assert row_one[key] == row_two[key], key
    assert row_one["zero_variance_share"] == 0.25  # prompt 3's group tied: its process ran fewer passes
    for key in ("reward_mean", "reward_std", "kl_mean", "completion_len_mean", "loss"):
        assert row_two[key] == pytest.approx(row_one[key], rel=1e-5, abs=1e-6), key
    assert row_one["loss"] != 0.0  # the second update's ratio is no longer 1


def test_sft_step_on_two_processes_with_half_the_batch_equals_one_process(runs):
    one, two = torch.load(runs[1] / "sft.pt"), torch.load(runs[2] / "sft.pt")
    diff, largest = _max_diff(one["grads"][0], two["grads"][0])
    assert largest > 1e-3 and diff < 1e-6 * max(1.0, largest), (diff, largest)
    first_one, first_two = one["log"][0], two["log"][0]
    assert first_one["step"] == first_two["step"] == 1 and first_one["num_tokens"] == first_two["num_tokens"]
    assert first_two["loss"] == pytest.approx(first_one["loss"], rel=1e-5)
    assert first_two["grad_norm"] == pytest.approx(first_one["grad_norm"], rel=1e-5)
    assert len(one["log"]) == len(two["log"]) == 2  # 8 records at a global batch of 4
    from safetensors.torch import load_file

    start = load_file(runs[1].parent / "tiny" / "model.safetensors")
    final_one, final_two = (load_file(runs[n] / "sft" / "model" / "model.safetensors") for n in (1, 2))
    moved, _ = _max_diff(start, final_one)
    diff, _ = _max_diff(final_one, final_two)  # the first process saved the model both processes trained
    assert moved > 1e-4 and diff < 1e-5, (moved, diff)


def test_rl_resumed_mid_run_on_two_processes_ends_where_an_uninterrupted_run_does(runs):
    from safetensors.torch import load_file

    out = runs[2]
    summary = json.loads((out / "resume.json").read_text())
    assert (summary["resumed_from_step"], summary["steps_this_run"], summary["steps"]) == (1, 1, 2)
    straight, resumed = (load_file(out / run / "model" / "model.safetensors") for run in ("straight", "resumed"))
    diff, largest = _max_diff(straight, resumed)
    assert largest > 0 and diff <= 1e-6, diff  # same weights, optimizer moments and RNG streams
    rows = {run: [json.loads(line) for line in (out / run / "rl_log.jsonl").read_text().splitlines()]
            for run in ("straight", "resumed")}
    assert [r["step"] for r in rows["straight"]] == [r["step"] for r in rows["resumed"]] == [1, 2]
    timing = {"seconds", "generate_seconds"}
    for a, b in zip(rows["straight"], rows["resumed"]):
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert rows["resumed"][1]["completion_len_mean"] * 4 == rows["resumed"][1]["tokens_generated"]  # step 2: 1 prompt
    # (its only prompt went to the first process; the second joined the sums and all-reduces with none)


def test_progress_is_printed_once_per_step_not_once_per_process(runs):
    output = (runs[2] / "launch.log").read_text()
    # RL steps run under 2 processes: equivalence 1, straight 2, stopped 1, resumed 1 (step 2)
    assert output.count("[rl] step 1 ") == 3 and output.count("[rl] step 2 ") == 2, output[-2000:]
