"""RPO on a lent GPU: SFT + RL with configs/rpo/gpu.yaml, the dev reflections, and raw TRL GRPO step time.

The GPU machine has no llama.cpp and no copy of the data, so the job is split in three:

  here:   .venv/bin/python bench/rpo_gpu.py prompts --tasks LaMP_3,LaMP_7 --out .carry/gpu
          (each task's CPU trajectories, and its dev reflection prompts with A_base, read from the
          CPU evaluation's prediction log: same base answers, retrieval and prompt as `personalign eval`)
  device: python3 bench/rpo_gpu.py run --carry .carry/gpu --out $OUT
          (SFT and RL per task, greedy reflections from both models, then TRL's GRPOTrainer on the same
          RL config for a step-time comparison; writes gen.jsonl, logs.jsonl and summary.json)
  here:   .venv/bin/python bench/rpo_gpu.py score --gen DIR
          (falls back to A_base on malformed output and scores with the LaMP metrics, as the RPO method does)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from personalign.rpo.pipeline import read_jsonl  # noqa: E402
from personalign.tasks import get_task  # noqa: E402

PREDICTIONS = "runs/reallamp/{task}/user-dev/predictions/rpo@rl.jsonl"
CARRIED = ("trajectories.jsonl", "rl_prompts.jsonl", "manifest.json")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def prompts(args: argparse.Namespace) -> None:
    """Copy trajectories and extract the dev reflection prompts (the last prompt of each RPO trace)."""
    for task in args.tasks:
        out = Path(args.out) / task
        out.mkdir(parents=True, exist_ok=True)
        for name in CARRIED:
            shutil.copy(Path(args.runs) / task / "trajectories" / name, out / name)
        rows = [{"id": r["id"], "messages": r["trace"]["prompts"][-1], "base_answer": r["trace"]["extra"]["base_answer"]}
                for r in read_jsonl(Path(args.predictions.format(task=task)))]
        _write_jsonl(out / "dev_prompts.jsonl", rows)
        print(f"{task}: {len(rows)} dev prompts -> {out}")


def _median_step(seconds: list[float]) -> float | None:
    """Median step time without the first step (warm-up)."""
    return round(statistics.median(seconds[1:] or seconds), 2) if seconds else None


def _generate(model_dir: Path, rows: list[dict], max_tokens: int) -> list[str]:
    import torch

    from personalign.backends.transformers import TransformersLLM
    from personalign.types import GenParams

    llm = TransformersLLM(str(model_dir), device="cuda" if torch.cuda.is_available() else "cpu", batch_size=64)
    return [c.text for c in llm.chat_batch([r["messages"] for r in rows], GenParams(max_tokens=max_tokens))]


def trl_step_time(config, prompts_file: Path, init: Path, steps: int, work: Path) -> dict:
    """Raw TRL ``GRPOTrainer`` on the same RL sampling config (k = k_max shots), seconds per step."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from personalign.rpo.model_io import load_trainable
    from personalign.rpo.prompts import reflection_messages
    from personalign.rpo.rewards import task_reward

    rl, task = config.rl, get_task(config.task)
    rows = read_jsonl(prompts_file)[: rl.prompts_per_step * (steps + 1)]
    data = Dataset.from_list([{"prompt": reflection_messages(task, r["task_input"], r["base_answer"],
                                                             r["items"][: rl.k_max], config.trajectories.item_max_words,
                                                             r.get("summary", "")), "gold": r["gold"]} for r in rows])

    def reward(completions, gold, **_):
        return [task_reward(task, c[0]["content"], g, rl.format_penalty) for c, g in zip(completions, gold)]

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

    model, tokenizer = load_trainable(init)
    cuda = torch.cuda.is_available()
    args = GRPOConfig(output_dir=str(work / "trl"), per_device_train_batch_size=rl.prompts_per_step * rl.samples_per_prompt,
                      num_generations=rl.samples_per_prompt, max_completion_length=rl.max_new_tokens,
                      temperature=rl.temperature, top_p=rl.top_p, beta=rl.beta, scale_rewards="batch",
                      learning_rate=rl.learning_rate, max_steps=steps, bf16=cuda, use_cpu=not cuda,
                      logging_steps=1, report_to=[], save_strategy="no", seed=rl.seed)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tokenizer,
                          callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    seconds = [b - a for a, b in zip([start, *stamps], stamps)]
    return {"steps": len(seconds), "seconds": [round(s, 2) for s in seconds], "median_step_s": _median_step(seconds)}


def run(args: argparse.Namespace) -> None:
    """On the GPU: SFT, RL and dev generations per task, then the TRL comparison; a table is printed last."""
    from personalign.rpo.config import load_config
    from personalign.rpo.pipeline import run_stage, stage_dir

    carry, out, work = Path(args.carry), Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    tasks = args.tasks or [p.name for p in sorted(carry.iterdir()) if (p / "dev_prompts.jsonl").is_file()]
    gens, logs, summary = [], [], {"tasks": {}, "trl": None}
    for task in tasks:
        config = load_config(args.config, {"task": task, "out": str(work)})
        trajectories = stage_dir(config, "trajectories")
        trajectories.mkdir(parents=True, exist_ok=True)
        for name in CARRIED:
            shutil.copy(carry / task / name, trajectories / name)
        sft, rl = run_stage("sft", config), run_stage("rl", config)
        for stage in ("sft", "rl"):
            logs += [{"task": task, "stage": stage, **row} for row in read_jsonl(stage_dir(config, stage) / f"{stage}_log.jsonl")]
        rows = read_jsonl(carry / task / "dev_prompts.jsonl")
        t0 = time.perf_counter()
        texts = {stage: _generate(stage_dir(config, stage) / "model", rows, args.max_tokens) for stage in ("sft", "rl")}
        gens += [{"task": task, "id": r["id"], "base_answer": r["base_answer"], "sft": a, "rl": b}
                 for r, a, b in zip(rows, texts["sft"], texts["rl"])]
        rl_seconds = [row["seconds"] for row in logs if row["task"] == task and row["stage"] == "rl"]
        summary["tasks"][task] = {"sft": sft, "rl": rl, "rl_median_step_s": _median_step(rl_seconds),
                                  "dev_prompts": len(rows), "generate_s": round(time.perf_counter() - t0, 1)}
        _write_jsonl(out / "gen.jsonl", gens)
        _write_jsonl(out / "logs.jsonl", logs)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(f"[gpu] {task}: sft {sft['seconds']}s, rl {rl['seconds']}s", flush=True)
        if task == args.trl_task:
            try:
                summary["trl"] = {"task": task, **trl_step_time(config, carry / task / "rl_prompts.jsonl",
                                                                stage_dir(config, "sft") / "model", args.trl_steps, work)}
            except Exception as exc:  # noqa: BLE001 - keep the trained results if TRL breaks
                summary["trl"] = {"task": task, "error": f"{type(exc).__name__}: {exc}"[:500]}
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
            print(f"[gpu] TRL: {summary['trl']}", flush=True)
    print("| task | SFT steps | SFT s | RL steps | RL s/step (median) | dev prompts | generate s |")
    print("|---|---|---|---|---|---|---|")
    for task, s in summary["tasks"].items():
        print(f"| {task} | {s['sft']['steps']} | {s['sft']['seconds']} | {s['rl']['steps']} | {s['rl_median_step_s']} "
              f"| {s['dev_prompts']} | {s['generate_s']} |")
    print(f"TRL: {json.dumps(summary['trl'])}")


def score(args: argparse.Namespace) -> None:
    """Score the GPU generations as the RPO method answers (fallback to A_base); print a markdown table.

    Also splits ``logs.jsonl`` into ``<task>_rl_log.jsonl`` files for ``personalign plot rl``.
    """
    from personalign.data.lamp_io import load_split
    from personalign.methods.rpo import reflected_answer
    from personalign.tasks.metrics import compute_metrics

    gen_dir = Path(args.gen)
    rows, logs = read_jsonl(gen_dir / "gen.jsonl"), read_jsonl(gen_dir / "logs.jsonl")
    print("| task | model | metric 1 | metric 2 | fallback_rate | n |\n|---|---|---|---|---|---|")
    for task_name in dict.fromkeys(r["task"] for r in rows):
        task = get_task(task_name)
        _, golds = load_split(args.data, task, "user", "dev")
        mine = [r for r in rows if r["task"] == task_name]
        for stage in ("sft", "rl"):
            answers = [reflected_answer(task, r[stage], r["base_answer"]) for r in mine]
            metrics = compute_metrics(task, [a[0] for a in answers], [golds[r["id"]] for r in mine])
            shown = " | ".join(f"{name} {value:.4f}" for name, value in list(metrics.items())[:2])
            print(f"| {task_name} | {stage} | {shown} | {sum(a[2] for a in answers) / len(answers):.4f} | {len(mine)} |")
        _write_jsonl(gen_dir / f"{task_name}_rl_log.jsonl",
                     [r for r in logs if r["task"] == task_name and r["stage"] == "rl"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prompts")
    p.add_argument("--tasks", default="LaMP_2,LaMP_3,LaMP_5,LaMP_6,LaMP_7")
    p.add_argument("--runs", default="runs/rpo", help="the CPU RPO run whose trajectories are reused")
    p.add_argument("--predictions", default=PREDICTIONS, help="the CPU eval's RPO prediction log ({task} filled)")
    p.add_argument("--out", default=".carry/gpu")
    r = sub.add_parser("run")
    r.add_argument("--carry", default=".carry/gpu")
    r.add_argument("--tasks", default="", help="comma-separated, in this order (default: every carried task)")
    r.add_argument("--config", default="configs/rpo/gpu.yaml")
    r.add_argument("--work", default="/root/rpo-gpu")
    r.add_argument("--out", required=True)
    r.add_argument("--max-tokens", type=int, default=128, help="reflection tokens, as configs/eval/rpo_rows.yaml")
    r.add_argument("--trl-task", default="LaMP_3")
    r.add_argument("--trl-steps", type=int, default=6)
    s = sub.add_parser("score")
    s.add_argument("--gen", required=True)
    s.add_argument("--data", default="../shared/data/reallamp")
    args = parser.parse_args(argv)
    if getattr(args, "tasks", None):
        args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    {"prompts": prompts, "run": run, "score": score}[args.command](args)


if __name__ == "__main__":
    main()
