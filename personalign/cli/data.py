"""``personalign data download|build|synth|validate``."""

from __future__ import annotations

import argparse
import json

from personalign.cli.common import SPLIT_HELP


def cmd_data(args: argparse.Namespace) -> int:
    from personalign.tasks import get_task

    if args.data_command == "download":
        from personalign.data.download import download_lamp

        for path in download_lamp(args.task, args.split, args.out):
            print(path)
    elif args.data_command == "build":
        from personalign.data.build import build_benchmark

        stats = build_benchmark(args.input, get_task(args.task), args.out, seed=args.seed,
                                dev_frac=args.dev_frac, test_frac=args.test_frac,
                                questions_per_user=args.questions_per_user)
        print(json.dumps(stats, indent=2))
    elif args.data_command == "synth":
        _synth(args)
    elif args.data_command == "validate":
        from personalign.data.lamp_io import validate_files

        for line in validate_files(args.files, get_task(args.task) if args.task else None):
            print(line)
    return 0

def _synth(args: argparse.Namespace) -> None:
    from personalign.data.synth import RULE_KINDS, SynthConfig, generate
    from personalign.errors import ConfigError

    asked = tuple(args.rules.split(",")) if args.rules else ()
    stray = [k for k in asked if not any(k in RULE_KINDS[shape] for shape in args.shapes)]
    if stray:
        raise ConfigError(f"--rules {stray[0]!r} fits none of the shapes {', '.join(args.shapes)}")
    for shape in args.shapes:
        kinds = tuple(k for k in asked if k in RULE_KINDS[shape])
        if asked and not kinds:
            raise ConfigError(f"--rules names no rule of shape {shape} ({', '.join(RULE_KINDS[shape])})")
        config = SynthConfig(shape, users=args.users, history=args.history, share=args.share, noise=args.noise,
                             seed=args.seed, kinds=kinds, dev_frac=args.dev_frac, test_frac=args.test_frac)
        print(json.dumps(generate(config, args.out)))


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="download, build and validate LaMP-format data")
    dsub = data.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("download", help="fetch the official LaMP files (needs a network)")
    dl.add_argument("task", help="LaMP task name, e.g. LaMP_3")
    dl.add_argument("--split", default="user", choices=["user", "time"], help=SPLIT_HELP)
    dl.add_argument("--out", default="data", help="folder that receives LaMP_N/<split>/")
    bd = dsub.add_parser("build", help="build user and time splits from per-user JSONL records")
    bd.add_argument("--input", required=True, help="JSONL with user_id, input, output, optional timestamp")
    bd.add_argument("--task", required=True, help="the task the records are for, e.g. LaMP_3")
    bd.add_argument("--out", required=True, help="folder that receives LaMP_N/user/ and LaMP_N/time/")
    bd.add_argument("--seed", type=int, default=0, help="seed of the user split's shuffle")
    bd.add_argument("--dev-frac", type=float, default=0.1, help="user split: share of users in dev")
    bd.add_argument("--test-frac", type=float, default=0.2, help="user split: share of users in test")
    bd.add_argument("--questions-per-user", type=int, default=1,
                    help="user split: each train user's latest N records are questions (default 1)")
    sy = dsub.add_parser("synth", help="write synthetic LaMP-format tasks whose users follow known rules")
    sy.add_argument("--out", required=True, help="folder that receives LaMP_N/{user,time}/ and LaMP_N/rules.json")
    sy.add_argument("--shapes", nargs="+", default=["tweet", "title", "rating", "label"],
                    choices=["tweet", "title", "rating", "label"],
                    help="task shapes: tweet (LaMP_7), title (LaMP_5), rating (LaMP_3), label (LaMP_2); default all")
    sy.add_argument("--users", type=int, default=40, help="number of users (default 40)")
    sy.add_argument("--history", type=int, default=8, help="history items of a user-split question (default 8)")
    sy.add_argument("--share", type=float, default=1.0, help="share of users with a rule, 0..1 (0: no signal)")
    sy.add_argument("--noise", type=float, default=0.0, help="share of a rule user's records that break it, 0..1")
    sy.add_argument("--rules", help="comma-separated rule kinds users draw from (tweet: lowercase,signoff,emoji,u; "
                    "title: lowercase,prefix,suffix; rating: offset; label: map); default every kind")
    sy.add_argument("--seed", type=int, default=0, help="seed: the same seed writes the same bytes")
    sy.add_argument("--dev-frac", type=float, default=0.2, help="user split: share of users in dev")
    sy.add_argument("--test-frac", type=float, default=0.2, help="user split: share of users in test")
    va = dsub.add_parser("validate", help="check LaMP question/output files")
    va.add_argument("files", nargs="+", help="LaMP question and output files")
    va.add_argument("--task", help="also check the fields this task needs")
    data.set_defaults(func=cmd_data)
