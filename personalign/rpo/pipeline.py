"""``personalign train rpo trajectories|sft|rl``: each stage reads the previous stage's output folder.

Layout under ``<out>/<task>/``: ``trajectories/`` (trajectories.jsonl, rl_prompts.jsonl, stats.json),
``sft/`` (model/, sft_log.jsonl), ``rl/`` (model/, rl_log.jsonl, checkpoint/). Every stage writes a
``manifest.json`` with the full config, the data hash and the git revision.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from personalign.backends import get_llm
from personalign.data.lamp_io import files_sha256, find_split_files, load_split
from personalign.errors import ConfigError
from personalign.manifest import write_manifest
from personalign.train.distributed import main_process
from personalign.retrievers import get_retriever
from personalign.rpo.config import RPOConfig
from personalign.store import default_cache_dir
from personalign.tasks import get_task

STAGES = ("trajectories", "sft", "rl")


def stage_dir(config: RPOConfig, stage: str) -> Path:
    return Path(config.out) / config.task / stage


def input_dir(config: RPOConfig, stage: str) -> Path:
    """Where a later stage reads an earlier stage's output: ``reuse`` (an ablation sharing a run) or ``out``."""
    return Path(config.reuse or config.out) / config.task / stage


def _data_hash(config: RPOConfig, stage: str = "trajectories") -> str:
    """The train split's hash; later stages take it from the trajectories' manifest (they never read the data)."""
    if stage != "trajectories":
        manifest = input_dir(config, "trajectories") / "manifest.json"
        if manifest.is_file():
            return json.loads(manifest.read_text()).get("data_sha256")
    return files_sha256([p for p in find_split_files(config.data, config.task, config.split, config.train_part) if p])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file an earlier stage wrote."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist: run the earlier stage first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_trajectories(config: RPOConfig, cache_dir: str | None = None) -> dict[str, Any]:
    from personalign.rpo.trajectories import generate_trajectories

    task = get_task(config.task)
    tc = config.trajectories
    examples, golds = load_split(config.data, task, config.split, config.train_part)
    if golds is None:
        raise ConfigError(f"{config.task} {config.split} {config.train_part} split has no outputs file (golds are needed)")
    if tc.max_examples is not None and tc.max_examples < len(examples):
        examples = random.Random(tc.seed).sample(examples, tc.max_examples)
    cache = Path(cache_dir or default_cache_dir()) / "llm.sqlite"
    base = get_llm(tc.base_llm, cache_path=cache, **tc.base_llm_options)
    teacher = None if tc.teacher_llm == "template" else get_llm(tc.teacher_llm, cache_path=cache, **tc.teacher_llm_options)
    out, data_hash = stage_dir(config, "trajectories"), _data_hash(config)
    write_manifest(out / "manifest.json", config, data_hash, {"stage": "trajectories", "status": "running"})
    stats = generate_trajectories(task, examples, golds, base, teacher, get_retriever(tc.retriever, seed=tc.seed),
                                  tc, out, config.method_config, k_to=config.rl.k_to)
    write_manifest(out / "manifest.json", config, data_hash, {"stage": "trajectories", "status": "done", "stats": stats})
    return stats


def run_sft(config: RPOConfig) -> dict[str, Any]:
    from personalign.rpo.sft import sft_examples, train_sft

    rows = sft_examples(read_jsonl(input_dir(config, "trajectories") / "trajectories.jsonl"), config)
    out, data_hash = stage_dir(config, "sft"), _data_hash(config, "sft")
    if main_process():
        write_manifest(out / "manifest.json", config, data_hash, {"stage": "sft", "status": "running"})
    summary = train_sft(config, rows, out)
    if main_process():
        write_manifest(out / "manifest.json", config, data_hash, {"stage": "sft", "status": "done", "summary": summary})
    return summary


def run_rl(config: RPOConfig) -> dict[str, Any]:
    from personalign.rpo.rl import RLPrompt, train_rl

    rows = read_jsonl(input_dir(config, "trajectories") / "rl_prompts.jsonl")
    prompts = [RLPrompt(id=r["id"], task_input=r["task_input"], base_answer=r["base_answer"], items=r["items"],
                        gold=r["gold"], summary=r.get("summary", "")) for r in rows]
    init = config.sft.model if config.skip_sft else input_dir(config, "sft") / "model"
    out, data_hash = stage_dir(config, "rl"), _data_hash(config, "rl")
    if main_process():
        write_manifest(out / "manifest.json", config, data_hash, {"stage": "rl", "status": "running", "init": str(init)})
    summary = train_rl(config, prompts, init, out)
    if main_process():
        write_manifest(out / "manifest.json", config, data_hash, {"stage": "rl", "status": "done", "summary": summary})
    return summary


def run_stage(stage: str, config: RPOConfig, cache_dir: str | None = None) -> dict[str, Any]:
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    if stage == "trajectories":
        return run_trajectories(config, cache_dir)
    if stage == "sft":
        return run_sft(config)
    if stage == "rl":
        return {"skipped": "skip_rl is set (the RPO-without-RL ablation evaluates the SFT model)"} if config.skip_rl \
            else run_rl(config)
    raise ConfigError(f"unknown RPO stage '{stage}'; choose from: {', '.join(STAGES)}")
