"""``personalign data download|build|validate``."""

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
    elif args.data_command == "validate":
        from personalign.data.lamp_io import validate_files

        for line in validate_files(args.files, get_task(args.task) if args.task else None):
            print(line)
    return 0

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
    va = dsub.add_parser("validate", help="check LaMP question/output files")
    va.add_argument("files", nargs="+", help="LaMP question and output files")
    va.add_argument("--task", help="also check the fields this task needs")
    data.set_defaults(func=cmd_data)
