"""``personalign train``, ``plot``, ``export`` and ``list``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from personalign import registry
from personalign.cli.common import add_cache_dir
from personalign.errors import ConfigError
from personalign.train.export import OUT_TYPES


def cmd_train(args: argparse.Namespace) -> int:
    from personalign.rpo.config import config_dict, load_config
    from personalign.rpo.pipeline import run_stage
    from personalign.train.distributed import main_process

    cli = {"task": args.task, "data": args.data, "split": args.split, "out": args.out}  # None: not given
    if args.method == "popi":
        return train_popi_cli(args, cli)
    config = load_config(args.config, {**cli, "threads": args.threads})
    show = main_process()  # under `accelerate launch`, one process speaks for all
    if show:
        print(f"RPO {args.stage} for {config.task} ({config.split} split) -> {Path(config.out) / config.task / args.stage}")
    summary = run_stage(args.stage, config, args.cache_dir)
    if show:
        print(json.dumps({"stage": args.stage, "summary": summary, "config": config_dict(config)[args.stage]}, indent=2))
    return 0

def train_popi_cli(args: argparse.Namespace, cli: dict) -> int:
    from personalign.popi.generator import train_popi_generator
    from personalign.popi.train import load_popi_config, train_popi
    from personalign.train.distributed import main_process

    if args.stage not in ("rl", "generator"):
        raise ConfigError("POPI trains two things: personalign train popi rl (the summarizer), "
                          "personalign train popi generator (the generator's SFT)")
    config = load_popi_config(args.config, {**cli, "rl": {"threads": args.threads}})  # one setting for both stages
    show = main_process()  # under `accelerate launch`, one process speaks for all
    if args.stage == "generator":
        if show:
            print(f"POPI generator SFT for {config.task} ({config.split} split) -> {Path(config.out) / config.task / 'generator'}")
        summary = train_popi_generator(config, args.cache_dir)
    else:
        if show:
            print(f"POPI summarizer RL for {config.task} ({config.split} split) -> {Path(config.out) / config.task / 'rl'}")
        summary = train_popi(config, args.cache_dir)
    if show:
        print(json.dumps({"stage": f"popi-{args.stage}", "summary": summary, "config": config.model_dump(mode="json")}, indent=2))
    return 0

def cmd_plot(args: argparse.Namespace) -> int:
    from personalign.rpo.plots import plot_rl_curves, plot_sft_loss

    if args.kind == "sft":
        if len(args.logs) != 1:
            raise ConfigError("plot sft takes one sft_log.jsonl")
        print(plot_sft_loss(Path(args.logs[0]), Path(args.out)))
        return 0
    logs = {}
    for entry in args.logs:
        label, sep, path = entry.partition("=")
        logs[label if sep else Path(entry).parent.parent.name] = Path(path if sep else entry)
    print(plot_rl_curves(logs, Path(args.out)))
    return 0

def cmd_export(args: argparse.Namespace) -> int:
    from personalign.train.export import export_gguf

    print(export_gguf(args.model, args.out, args.type))
    return 0

def cmd_list(args: argparse.Namespace) -> int:
    from personalign.tasks import available_tasks

    print("tasks:      " + ", ".join(available_tasks()))
    for kind in registry.KINDS:
        names = registry.available(kind)
        if kind == "methods":
            uses_llm = {name: registry.load(kind, name).needs_llm for name in names}
            print("methods:    " + ", ".join(n for n in names if uses_llm[n]) + "   (these call the LLM)")
            from personalign.methods import REFERENCES

            print("references: " + ", ".join(n for n in names if not uses_llm[n] and n in REFERENCES)
                  + "   (no LLM: baselines a method must beat; `--methods references` runs those that fit the task)")
            ceilings = [n for n in names if not uses_llm[n] and n not in REFERENCES]
            if ceilings:
                print("ceilings:   " + ", ".join(ceilings) + "   (no LLM; they know the true rules of "
                      "`personalign data synth` data)")
        else:
            print(f"{kind + ':':<11} " + ", ".join(names))
    return 0

def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="train a method's models (RPO: trajectories, then sft, then rl; "
                                      "POPI: rl for the summarizer, generator for the generator's SFT)")
    tr.add_argument("method", choices=["rpo", "popi"], help="the method whose models to train")
    tr.add_argument("stage", choices=["trajectories", "sft", "rl", "generator"],
                    help="rpo: trajectories, sft, rl (in this order); popi: rl, generator")
    tr.add_argument("--config", help="YAML with every hyperparameter (see configs/rpo/, configs/popi/)")
    tr.add_argument("--data", help="LaMP-format data folder (overrides the config)")
    tr.add_argument("--task", help="task name (overrides the config)")
    tr.add_argument("--split", choices=["user", "time"], help="(overrides the config)")
    tr.add_argument("--out", help="output folder (overrides the config)")
    tr.add_argument("--threads", type=int, help="torch CPU threads (overrides the config)")
    add_cache_dir(tr)
    tr.set_defaults(func=cmd_train)

    pl = sub.add_parser("plot", help="training curves: RL reward and KL per step, or SFT loss, as a PNG")
    pl.add_argument("kind", choices=["rl", "sft"], help="rl: reward and KL per step; sft: loss per step")
    pl.add_argument("logs", nargs="+", help="LABEL=path/to/rl_log.jsonl ... (rl), or one sft_log.jsonl (sft)")
    pl.add_argument("--out", required=True, help="PNG file to write")
    pl.set_defaults(func=cmd_plot)

    ex = sub.add_parser("export", help="convert a trained model folder to GGUF for llama.cpp serving")
    ex.add_argument("model", help="transformers model folder, e.g. runs/rpo/LaMP_3/rl/model")
    ex.add_argument("--out", help="GGUF file (default: <model>.<type>.gguf beside the folder)")
    ex.add_argument("--type", default="f16", choices=OUT_TYPES,
                    help="f16 (default, half the size; greedy outputs can differ from transformers), "
                         "f32 (greedy outputs identical to transformers), q8_0 (fastest)")
    ex.set_defaults(func=cmd_export)

    ls = sub.add_parser("list", help="list tasks, methods, retrievers and backends")
    ls.set_defaults(func=cmd_list)
