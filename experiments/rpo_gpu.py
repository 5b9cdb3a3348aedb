"""RPO on a lent GPU: all five tasks trained (SFT + RL) and their reflections generated in one call,
next to raw TRL (``SFTTrainer`` and ``GRPOTrainer``) on the same data and sampling config.

The GPU machine has no llama.cpp and no copy of the data, so the job is split in three
(experiments/rpo_gpu.sh is the device half and says how the model and wheels travel):

  here:   .venv/bin/python -m experiments.rpo_gpu prompts [--runs runs/rpo-fit-prior --part val] --out .carry/gpu
          (each task's CPU trajectories, and its dev (or validation) reflection prompts under the own,
          other-user and none profile controls: the RPO method's own base answer, retrieval and prompt,
          from running its plan up to the reflection request; base answers come from the LLM cache that
          `personalign eval` fills)
  device: python3 -m experiments.rpo_gpu run --tasks T --carry .carry/gpu --out DIR/T [--config experiments/configs/rpo/gpu-fit.yaml]
          (one process per task, all at once: SFT, RL and greedy reflections from both models for every
          carried part; gen.jsonl, logs.jsonl, summary.json), then
          python3 -m experiments.rpo_gpu compare --results DIR (one table; SFT throughput against raw TRL and,
          with --trl-steps, TRL's GRPOTrainer step time, with the GPU to themselves)
  here:   .venv/bin/python -m experiments.rpo_gpu score --gen DIR/T
          (writes the generations as prediction logs rpo@gpu-sft, rpo@gpu-rl, rpo@gpu-rl#other-user and
          rpo@gpu-rl#none of each part, so that `personalign report` gives intervals, fallback rates and
          paired tests)
  `shrink` makes a small copy of the carried inputs for a CPU rehearsal (docs/rpo.md, "On a lent GPU").

To choose on validation and report dev once, train on the fit users (experiments/configs/rpo/gpu-fit.yaml,
trajectories from experiments/configs/rpo/cpu-fit-prior.yaml) and carry both parts: the same models are scored on val and on dev.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

from experiments import DATA_DIR
from personalign.cli.common import csv_list
from personalign.rpo.pipeline import read_jsonl
from personalign.tasks import get_task

TASKS = "LaMP_6,LaMP_2,LaMP_7,LaMP_3,LaMP_5"
CARRIED = ("trajectories.jsonl", "rl_prompts.jsonl", "manifest.json")
CONTROLS = ("own", "other-user", "none")
PARTS = ("dev", "val")
K = 4  # history items in a reflection prompt (`prompts --k`); prompts written before they carried k used it
GEN_ROWS = (("sft", "own"), ("rl", "own"), ("rl", "other-user"), ("rl", "none"))  # (model, profile control)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _until_reflection(plan):
    """Run an RPO plan up to its reflection request; the answer's trace holds that prompt and the base output."""
    from personalign.types import Answer, Trace

    requests, outputs = next(plan), {}
    while not any(r.stage == "reflect" for r in requests):
        completions = yield requests
        outputs.update({r.stage: c.text for r, c in zip(requests, completions)})
        requests = plan.send(completions)
    plan.close()
    trace = Trace(stages=list(outputs), raw_outputs=list(outputs.values()), prompts=[requests[-1].messages])
    return Answer("", trace, "rpo")


def prompts(args: argparse.Namespace) -> None:
    """Copy each task's trajectories and write its ``--part`` reflection prompts under every profile control."""
    from tqdm import tqdm

    from personalign.engine import Engine
    from personalign.eval.runner import EvalConfig, EvalRunner, control_profile
    from personalign.methods.base import MethodConfig

    for task in args.tasks:
        out = Path(args.out) / task
        out.mkdir(parents=True, exist_ok=True)
        for name in CARRIED:
            shutil.copy(Path(args.runs) / task / "trajectories" / name, out / name)
        runner = EvalRunner(EvalConfig(data=args.data, task=task, methods=["rpo"], split="user", part=args.part,
                                       retriever=args.retriever, llm="llamacpp",
                                       llm_options={"quant": "q8_0", "n_threads": 1},
                                       method_config=MethodConfig(k=args.k)))
        method, _ = runner.build("rpo")
        rows = []
        for control in CONTROLS:
            plans = (_until_reflection(method.plan(ex, control_profile(ex, runner.pool, control, runner.config.seed)))
                     for ex in runner.examples)
            with tqdm(total=len(runner.examples), desc=f"{task} {args.part} {control}", unit="ex", file=sys.stderr) as bar:
                for index, answer, _ in Engine(method.backends()).run(plans):
                    trace = answer.trace
                    rows.append({"id": runner.examples[index].id, "control": control, "k": args.k,
                                 "messages": trace.prompts[0],
                                 "trace": {"stages": trace.stages, "raw_outputs": trace.raw_outputs}})
                    bar.update(1)
        runner.backend().close()
        _write_jsonl(out / f"{args.part}_prompts.jsonl", rows)
        print(f"{task}: {len(rows)} {args.part} prompts ({', '.join(CONTROLS)}) -> {out}", flush=True)


def shrink(args: argparse.Namespace) -> None:
    """A small copy of carried device inputs, for a CPU rehearsal of the device job (experiments/configs/rpo/gpu-rehearsal.yaml)."""
    for task in args.tasks:
        src, out = Path(args.carry) / task, Path(args.out) / task
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "manifest.json", out / "manifest.json")
        for name in ("trajectories.jsonl", "rl_prompts.jsonl"):
            _write_jsonl(out / name, read_jsonl(src / name)[: args.rows])
        for part in PARTS:
            if (src / f"{part}_prompts.jsonl").is_file():
                rows = read_jsonl(src / f"{part}_prompts.jsonl")
                ids = set(list(dict.fromkeys(r["id"] for r in rows))[: args.questions])
                _write_jsonl(out / f"{part}_prompts.jsonl", [r for r in rows if r["id"] in ids])
        print(f"{task}: {args.rows} trajectories and RL prompts, {args.questions} questions a part -> {out}")


def _median(seconds: list[float]) -> float | None:
    """Median step time without the first step (warm-up)."""
    return round(statistics.median(seconds[1:] or seconds), 2) if seconds else None


def _generate(model_dir: Path, messages: list, max_tokens: int, batch_size: int) -> list[str]:
    import torch

    from personalign.backends.transformers import TransformersLLM
    from personalign.types import GenParams

    llm = TransformersLLM(str(model_dir), device="cuda" if torch.cuda.is_available() else "cpu", batch_size=batch_size)
    return [c.text for c in llm.chat_batch(messages, GenParams(max_tokens=max_tokens))]


def _cycled(rows: list[dict], n: int) -> list[dict]:
    """The first ``n`` rows of ``rows`` repeated, so that every batch size gets its full number of steps."""
    return [rows[i % len(rows)] for i in range(n)]


def _measured(results: dict, name: str, deadline: float, work) -> None:
    """``results[name] = work()`` with the GPU's peak memory, unless ``deadline`` (perf_counter) has passed; an
    error (an out-of-memory batch size, say) is recorded and the next measurement still runs."""
    import torch

    if time.perf_counter() > deadline:
        results[name] = {"skipped": "over the budget"}
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        results[name] = work()
    except Exception as exc:  # noqa: BLE001 - one failed measurement must not lose the others
        results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    if cuda:
        results[name]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    print(f"[gpu] sft_bench {name}: {json.dumps(results[name])[:300]}", flush=True)


# `compare --sft-bench-variants`: our SFT trainer with these sft options, at every bench batch size
SFT_VARIANTS = {"liger": {"liger_kernel": True},
                "compile": {"torch_compile": True, "pad_to_multiple_of": 128},
                "liger_compile": {"liger_kernel": True, "torch_compile": True, "pad_to_multiple_of": 128}}


def sft_bench(config, pooled: list[dict], batches: list[int], steps: int, work: Path, deadline: float,
              profile_to: Path | None = None, variants: list[str] = ()) -> dict:
    """SFT tokens/s on the same trajectories: ours at ``batches[0]``, then ours under each of ``variants``
    (``SFT_VARIANTS``) at each of ``batches``, ours at ``batches[1]``, (at ``batches[0]``) a profile of ours, raw
    TRL ``SFTTrainer`` with activation checkpointing off (TRL turns it on; ours is off) and raw TRL with its
    defaults, and ours at the other batch sizes. Measurements past ``deadline`` are skipped."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer as TRLSFTTrainer

    from personalign.train.model_io import load_trainable
    from personalign.train.sft import SFTTrainer, StepClock, checkpointing_field, sft_records

    batch, cuda, results = batches[0], torch.cuda.is_available(), {}
    keys = ("steps", "examples", "seconds", "tokens", "tokens_per_second", "tokens_per_second_steady")

    def label(size: int, variant: str) -> str:
        return "_".join(filter(None, ("ours", variant, str(size))))

    def ours(size: int, n_steps: int, variant: str = "") -> SFTTrainer:
        sft = config.sft.model_copy(update={"batch_size": size, "epochs": 1.0, "max_examples": None,
                                            **SFT_VARIANTS.get(variant, {})})
        return SFTTrainer(sft, _cycled(pooled, size * n_steps), work / f"sft-bench-{label(size, variant)}")

    def ours_throughput(size: int, variant: str = "") -> None:
        _measured(results, label(size, variant), deadline,
                  lambda: {k: v for k, v in ours(size, steps, variant).train(resume=False).items() if k in keys})

    def profiled() -> dict:
        from torch.profiler import ProfilerActivity, profile

        trainer = ours(batch, 4)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            summary = trainer.train(resume=False)
        table = prof.key_averages()
        text = table.table(sort_by="self_cpu_time_total", row_limit=40)
        if cuda:
            text += "\n\n" + table.table(sort_by="self_device_time_total", row_limit=40)
        profile_to.write_text(text)
        return {"steps": summary["steps"], "seconds": summary["seconds"], "file": profile_to.name}

    def raw_trl(name: str, extra: dict) -> dict:
        rows = _cycled(pooled, batch * steps)
        model, tokenizer = load_trainable(config.sft.model)
        args = TRLSFTConfig(output_dir=str(work / f"sft-bench-{name}"), per_device_train_batch_size=batch,
                            max_steps=steps, max_length=config.sft.max_length, bf16=cuda, use_cpu=not cuda,
                            logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True, **extra)
        trainer = TRLSFTTrainer(model=model, args=args, processing_class=tokenizer,
                                train_dataset=Dataset.from_list(sft_records(rows, tokenizer, config.sft.max_length)))
        clock = StepClock(lambda: int(trainer._total_train_tokens))
        trainer.add_callback(clock)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        return {"steps": len(clock.marks), "examples": len(rows), "seconds": round(seconds, 2),
                "tokens": int(trainer._total_train_tokens),
                "tokens_per_second": round(trainer._total_train_tokens / seconds, 1),
                "tokens_per_second_steady": clock.steady_tokens_per_second()}

    ours_throughput(batch)
    for variant in variants:
        for size in batches:
            ours_throughput(size, variant)
    for size in batches[1:2]:
        ours_throughput(size)
    if profile_to:
        _measured(results, f"ours_{batch}_profile", deadline, profiled)
    _measured(results, f"trl_no_checkpointing_{batch}", deadline,
              lambda: raw_trl("trl_no_checkpointing", {checkpointing_field(TRLSFTConfig): False}))
    _measured(results, f"trl_{batch}", deadline, lambda: raw_trl("trl", {}))
    for size in batches[2:]:  # the largest, which may not fit, last
        ours_throughput(size)
    return results


def trl_grpo_step_time(config, prompts_file: Path, init: Path, steps: int, work: Path) -> dict:
    """Raw TRL ``GRPOTrainer`` on the same RL sampling config (k = rl.k_to items), seconds per step."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from personalign.train.model_io import load_trainable
    from personalign.rpo.prompts import reflection_messages
    from personalign.rpo.rewards import task_reward
    from personalign.train.sft import StepClock

    rl, task = config.rl, get_task(config.task)
    rows = read_jsonl(prompts_file)[: rl.prompts_per_step * (steps + 1)]
    data = Dataset.from_list([{"prompt": reflection_messages(task, r["task_input"], r["base_answer"],
                                                             r["items"][: rl.k_to], config.method_config.item_max_words,
                                                             r.get("summary", "")), "gold": r["gold"]} for r in rows])

    def reward(completions, gold, **_):
        return [task_reward(task, c[0]["content"], g, rl.format_penalty) for c, g in zip(completions, gold)]

    model, tokenizer = load_trainable(init)
    cuda = torch.cuda.is_available()
    args = GRPOConfig(output_dir=str(work / "trl"), per_device_train_batch_size=rl.prompts_per_step * rl.samples_per_prompt,
                      num_generations=rl.samples_per_prompt, max_completion_length=rl.max_new_tokens,
                      temperature=rl.temperature, top_p=rl.top_p, beta=rl.beta, scale_rewards="batch",
                      learning_rate=rl.learning_rate, max_steps=steps, bf16=cuda, use_cpu=not cuda,
                      logging_steps=1, report_to=[], save_strategy="no", seed=rl.seed, disable_tqdm=True)
    clock = StepClock()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tokenizer,
                          callbacks=[clock])
    start = time.perf_counter()
    trainer.train()
    seconds = clock.step_seconds(start)
    return {"steps": len(seconds), "seconds": seconds, "median_step_s": _median(seconds)}


def _guarded(summary: dict, where: dict, key: str, out: Path, work) -> None:
    """Run ``work()`` into ``where[key]`` and save ``summary``; an error is recorded, not raised, so that
    what the run already trained is kept."""
    import traceback

    try:
        where[key] = work()
    except Exception as exc:  # noqa: BLE001 - a device run must keep what it already trained
        traceback.print_exc()
        where[key] = {"error": f"{type(exc).__name__}: {exc}"[:600]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"[gpu] {key}: {json.dumps(where[key])[:400]}", flush=True)


def train_task(config, carry: Path, out: Path, args: argparse.Namespace, logs: list, gens: list) -> dict:
    """SFT and RL for one task, then greedy reflections for its carried prompts; returns the task's timings."""
    from personalign.rpo.pipeline import run_stage, stage_dir

    task = config.task
    trajectories = stage_dir(config, "trajectories")
    trajectories.mkdir(parents=True, exist_ok=True)
    for name in CARRIED:
        shutil.copy(carry / task / name, trajectories / name)
    t0 = time.perf_counter()
    sft, rl = run_stage("sft", config), run_stage("rl", config)
    for stage in ("sft", "rl"):
        logs += [{"task": task, "stage": stage, **row} for row in read_jsonl(stage_dir(config, stage) / f"{stage}_log.jsonl")]
    train_seconds = time.perf_counter() - t0
    t0, mine_all, prompts = time.perf_counter(), [], {}
    for part in PARTS:  # dev, and val when a fit run is to be chosen on it
        if (carry / task / f"{part}_prompts.jsonl").is_file():
            prompts[part] = read_jsonl(carry / task / f"{part}_prompts.jsonl")
    for stage in dict.fromkeys(stage for stage, _ in GEN_ROWS):  # one model load and one batch list per stage
        controls = [control for s, control in GEN_ROWS if s == stage]
        mine = [(part, r) for part, rows in prompts.items() for r in rows
                if r["control"] in controls and (part == "dev" or r["control"] == "own")]  # controls on dev only
        texts = _generate(stage_dir(config, stage) / "model", [r["messages"] for _, r in mine], args.max_tokens,
                          args.gen_batch)
        mine_all += [{"task": task, "part": part, "model": stage, "control": r["control"], "id": r["id"],
                      "k": r.get("k", K), "trace": r["trace"], "raw": text} for (part, r), text in zip(mine, texts)]
    gens += mine_all  # only a task whose generations all finished
    _write_jsonl(out / "gen.jsonl", gens)
    _write_jsonl(out / "logs.jsonl", logs)
    rl_rows = [row for row in logs if row["task"] == task and row["stage"] == "rl"]
    at_k_max = [row["seconds"] for row in rl_rows if row.get("k") == config.rl.k_to]
    return {"sft": {k: sft.get(k) for k in ("steps", "examples", "seconds", "tokens_per_second", "tokens_per_second_steady")},
            "rl": {k: rl.get(k) for k in ("steps", "seconds", "final_reward_mean", "final_kl_mean")},
            "rl_median_step_s": _median([row["seconds"] for row in rl_rows]),
            "rl_median_step_s_at_k_max": round(statistics.median(at_k_max), 2) if at_k_max else None,
            "train_s": round(train_seconds, 1), "generate_s": round(time.perf_counter() - t0, 1),
            "prompts": {part: len(rows) for part, rows in prompts.items()}}


def run(args: argparse.Namespace) -> None:
    """On the GPU: SFT, RL and reflections for each task in ``--tasks``, one after another in this process."""
    from personalign.rpo.config import load_config

    start = time.perf_counter()
    carry, out, work = Path(args.carry), Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"config": args.config, "tasks": {}, "skipped": []}
    logs: list[dict] = []
    gens: list[dict] = []
    for task in args.tasks:
        if time.perf_counter() - start > args.budget:
            summary["skipped"].append(task)
            continue
        config = load_config(args.config, {"task": task, "out": str(work)})
        _guarded(summary, summary["tasks"], task, out, lambda: train_task(config, carry, out, args, logs, gens))
    summary["seconds"] = {"all": round(time.perf_counter() - start, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_table(summary)


def compare(args: argparse.Namespace) -> None:
    """After the task runs: merge their summaries (``--results``: one folder per run) and, while the budget
    lasts, time raw TRL next to ours (GRPOTrainer step time, SFT throughput) with the GPU to themselves."""
    from personalign.rpo.config import load_config
    from personalign.rpo.pipeline import stage_dir

    start = time.perf_counter()
    results, carry, work = Path(args.results), Path(args.carry), Path(args.work)
    summary: dict = {"config": args.config, "tasks": {}, "skipped": [], "seconds": {"tasks_wall": args.tasks_wall}}
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        found = folder / "summary.json"
        part = json.loads(found.read_text()) if found.is_file() else {"tasks": {folder.name: {"error": "no summary.json"}}}
        summary["tasks"].update(part["tasks"])
        summary["skipped"] += part.get("skipped", [])
    trained = [t for t, result in summary["tasks"].items() if "error" not in result]
    if args.trl_task in trained and args.trl_steps and time.perf_counter() - start < args.budget:
        config = load_config(args.config, {"task": args.trl_task, "out": str(work)})
        _guarded(summary, summary, "trl_grpo", results, lambda: {"task": args.trl_task, **trl_grpo_step_time(
            config, carry / args.trl_task / "rl_prompts.jsonl", stage_dir(config, "sft") / "model", args.trl_steps, work)})
    if args.sft_bench_steps and time.perf_counter() - start < args.budget:
        tasks = sorted(p.name for p in carry.iterdir() if (p / "trajectories.jsonl").is_file())
        pooled = [r for t in tasks for r in read_jsonl(carry / t / "trajectories.jsonl") if r["accepted"]]
        config = load_config(args.config, {"task": tasks[0], "out": str(work)})
        if args.sft_model:
            config = config.model_copy(update={"sft": config.sft.model_copy(update={"model": args.sft_model})})
        _guarded(summary, summary, "sft_bench", results,
                 lambda: sft_bench(config, pooled, args.sft_bench_batch, args.sft_bench_steps, work / "bench",
                                   start + args.budget, None if args.no_sft_profile else results / "sft_profile.txt",
                                   args.sft_bench_variants))
    summary["seconds"]["compare"] = round(time.perf_counter() - start, 1)
    (results / "summary.json").write_text(json.dumps(summary, indent=2))
    print_table(summary)


def print_table(summary: dict) -> None:
    print("| task | SFT steps | SFT s | SFT tokens/s (steady) | RL steps | RL s/step (median) | at k_max | train s "
          "| generate s | task s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for task, s in summary["tasks"].items():
        if "error" in s:
            print(f"| {task} | error: {s['error'][:120]} |")
            continue
        print(f"| {task} | {s['sft']['steps']} | {s['sft']['seconds']} | {s['sft']['tokens_per_second_steady']} "
              f"| {s['rl']['steps']} | {s['rl_median_step_s']} | {s['rl_median_step_s_at_k_max']} | {s['train_s']} "
              f"| {s['generate_s']} | {round(s['train_s'] + s['generate_s'], 1)} |")
    for key in ("sft_bench", "trl_grpo", "seconds", "skipped"):
        print(f"{key}: {json.dumps(summary.get(key))}")


def score(args: argparse.Namespace) -> None:
    """Write the GPU generations as keyed prediction logs in the eval run folders (dev, val) and rescore them.

    Also splits ``logs.jsonl`` into ``<task>_rl_log.jsonl`` files for ``personalign plot rl``.
    """
    from personalign.data.lamp_io import files_sha256, find_split_files, load_split
    from personalign.engine.predictions import PredictionLog
    from personalign.eval.rescore import score_run
    from personalign.eval.runner import row_label
    from personalign.methods.base import MethodConfig

    gen_dir = Path(args.gen)
    rows, logs = read_jsonl(gen_dir / "gen.jsonl"), read_jsonl(gen_dir / "logs.jsonl")
    summary = json.loads((gen_dir / "summary.json").read_text())
    folders = {"dev": Path(args.runs), "val": Path(args.val_runs)}
    for task_name, part in dict.fromkeys((r["task"], r.get("part", "dev")) for r in rows):
        task = get_task(task_name)
        _, golds = load_split(args.data, task, "user", part)
        run_dir = folders[part] / task_name / f"user-{part}"
        data_sha = files_sha256([p for p in find_split_files(args.data, task_name, "user", part) if p])
        mine, written = [r for r in rows if r["task"] == task_name and r.get("part", "dev") == part], []
        for stage, control in GEN_ROWS:
            label = row_label(f"rpo@{args.label}-{stage}", control)
            path = run_dir / "predictions" / f"{label}.jsonl"
            for old in (path, path.with_suffix(".key.json")):
                old.unlink(missing_ok=True)
            generated = [r for r in mine if r["model"] == stage and r["control"] == control]
            if not generated:  # validation parts are generated without the profile controls
                continue
            key = {"task": task_name, "split": "user", "part": part, "data_sha256": data_sha, "train_sha256": None,
                   "limit": None, "seed": 0, "method": f"rpo@{args.label}-{stage}",
                   "method_config": MethodConfig(k=generated[0].get("k", K)).model_dump(),  # prompts carry their k
                   "method_options": {"reflection": f"{summary['config']} {stage} model, trained and run on a GPU "
                                                    f"(experiments/rpo_gpu.py, {gen_dir.name})"},
                   "retriever": "bm25", "models": {}, "profile_control": control}
            written.append(label)
            with PredictionLog(path, key=key) as log:
                for r in generated:
                    trace = {**r["trace"], "stages": [*r["trace"]["stages"], "reflect"],
                             "raw_outputs": [*r["trace"]["raw_outputs"], r["raw"]]}
                    log.append({"id": r["id"], "gold": golds[r["id"]], "raw": r["raw"], "filter": "rpo",
                                "seconds": 0.0, "trace": trace})
        score_run(run_dir, task)
        print(f"{task_name} {part}: {', '.join(written)} -> {run_dir}")
    for task_name in dict.fromkeys(r["task"] for r in rows):
        _write_jsonl(gen_dir / f"{task_name}_rl_log.jsonl",
                     [r for r in logs if r["task"] == task_name and r["stage"] == "rl"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prompts")
    p.add_argument("--tasks", default=TASKS)
    p.add_argument("--runs", default="runs/rpo-prior", help="the CPU RPO run whose trajectories are reused")
    p.add_argument("--data", default=DATA_DIR, help="LaMP-format data folder (PERSONALIGN_DATA)")
    p.add_argument("--retriever", default="bm25")
    p.add_argument("--k", type=int, default=K, help="history items in the reflection prompt, as `eval --k`")
    p.add_argument("--part", default="dev", choices=PARTS,
                   help="val: prompts of the validation users, for a run trained with train_part: fit")
    p.add_argument("--out", default=".carry/gpu")
    k = sub.add_parser("shrink")
    k.add_argument("--carry", required=True, help="a folder written by `prompts`")
    k.add_argument("--out", required=True)
    k.add_argument("--tasks", default="LaMP_7,LaMP_2")
    k.add_argument("--rows", type=int, default=8, help="trajectories and RL prompts a task")
    k.add_argument("--questions", type=int, default=3, help="questions a part (each under every control)")
    r = sub.add_parser("run")
    r.add_argument("--carry", default=".carry/gpu")
    r.add_argument("--tasks", default=TASKS, help="comma-separated, in this order")
    r.add_argument("--config", default="configs/rpo/gpu.yaml")
    r.add_argument("--work", default="/root/rpo-gpu")
    r.add_argument("--out", required=True)
    r.add_argument("--max-tokens", type=int, default=128, help="reflection tokens, as experiments/configs/eval/rpo_rows.yaml")
    r.add_argument("--gen-batch", type=int, default=256)
    r.add_argument("--budget", type=float, default=480.0, help="seconds after which no new task is started")
    c = sub.add_parser("compare")
    c.add_argument("--results", required=True, help="the folder holding one output folder per `run`")
    c.add_argument("--tasks-wall", type=float, help="the wall seconds of the task runs, recorded in the summary")
    c.add_argument("--carry", default=".carry/gpu")
    c.add_argument("--config", default="configs/rpo/gpu.yaml")
    c.add_argument("--work", default="/root/rpo-gpu", help="the runs' --work: GRPO starts from --trl-task's SFT model")
    c.add_argument("--sft-bench-batch", default="64,128,256", help="raw TRL and ours at the first; ours at the others")
    c.add_argument("--sft-bench-steps", type=int, default=12, help="0: no SFT throughput comparison")
    c.add_argument("--sft-bench-variants", default="", help=f"comma-separated, of {', '.join(SFT_VARIANTS)}")
    c.add_argument("--sft-model", help="the SFT bench's model in place of the config's (e.g. a random-init copy)")
    c.add_argument("--no-sft-profile", action="store_true", help="no torch.profiler table of our SFT step")
    c.add_argument("--trl-task", default="LaMP_7")
    c.add_argument("--trl-steps", type=int, default=0, help="GRPOTrainer steps; 0: no step-time comparison")
    c.add_argument("--budget", type=float, default=60.0, help="seconds after which no measurement is started")
    s = sub.add_parser("score")
    s.add_argument("--gen", required=True)
    s.add_argument("--data", default=DATA_DIR, help="LaMP-format data folder (PERSONALIGN_DATA)")
    s.add_argument("--runs", default="runs/reallamp", help="where the dev rows go")
    s.add_argument("--val-runs", default="runs/reallamp-val", help="where the validation rows go")
    s.add_argument("--label", default="gpu", help="rows are named rpo@LABEL-sft and rpo@LABEL-rl")
    args = parser.parse_args(argv)
    if getattr(args, "tasks", None):
        args.tasks = csv_list(args.tasks)
    if getattr(args, "sft_bench_variants", None) is not None:
        args.sft_bench_variants = csv_list(args.sft_bench_variants)
        unknown = sorted(set(args.sft_bench_variants) - set(SFT_VARIANTS))
        if unknown:
            parser.error(f"--sft-bench-variants: unknown {', '.join(unknown)} (known: {', '.join(SFT_VARIANTS)})")
    if getattr(args, "sft_bench_batch", None):
        args.sft_bench_batch = [int(b) for b in csv_list(args.sft_bench_batch)]
    {"prompts": prompts, "shrink": shrink, "run": run, "compare": compare, "score": score}[args.command](args)


if __name__ == "__main__":
    main()
