"""The ``personalign`` command line: one module per command (eval, personalize, data, report, results, train,
serve)."""

from __future__ import annotations

import argparse
import sys

from personalign.cli import data, personalize, report, results, serve, train
from personalign.cli import eval as eval_command
from personalign.cli.common import Parser
from personalign.cli.eval import _for_task  # noqa: F401  (used by tests and configs)
from personalign.errors import PersonalignError
from personalign.extras import needs

# commands whose heavy imports all come with one extra (others: the extra of the missing package)
COMMAND_EXTRA = {"train": "train", "export": "train", "plot": "train"}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="personalign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (eval_command, personalize, data, report, results, train, serve):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with needs(f"`personalign {args.command}`", COMMAND_EXTRA.get(args.command)):
            return args.func(args)
    except PersonalignError as exc:
        print(f"personalign: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("personalign: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a read-only or full output folder, a missing file: rows written so far are kept
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"personalign: error: {where}{exc.strerror or exc}; what was written so far is kept, "
              "fix it and run the same command again", file=sys.stderr)
        return 2


