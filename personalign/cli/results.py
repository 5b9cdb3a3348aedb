"""``personalign results``: export per-example scores from run folders; regenerate docs/results.md from them."""

from __future__ import annotations

import argparse


def cmd_export(args: argparse.Namespace) -> int:
    from personalign.eval.scores import export

    for path in export(args.run_dir, args.out, args.data, args.commands):
        print(f"wrote {path} ({path.stat().st_size:,} bytes): question ids and metric values only")
    return 0


def cmd_page(args: argparse.Namespace) -> int:
    from personalign.eval.results_page import build_page, page_command, write_page

    if args.out:
        write_page(args.scores, args.out)
        print(f"wrote {args.out} from {args.scores} (no runs, no data)")
    else:
        print(build_page(args.scores, page_command(args.scores)), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    rs = sub.add_parser("results", help="committed per-example scores and the results page made from them")
    actions = rs.add_subparsers(dest="action", required=True)
    ex = actions.add_parser("export", help="write each run folder's per-example scores (ids and numbers only)")
    ex.add_argument("run_dir", help="an eval --out folder, or one task's run folder")
    ex.add_argument("--out", default="docs/scores", help="folder for <task>-<split>-<part>.json (default docs/scores)")
    ex.add_argument("--data", help="the data folder whose golds the logs are checked against (default: the manifest's)")
    ex.add_argument("--command", action="append", default=[], dest="commands",
                    help="a `personalign eval ...` (or `personalign data synth ...`) command that made the runs "
                         "or their data, recorded in each file (repeatable)")
    ex.set_defaults(func=cmd_export)
    pg = actions.add_parser("page", help="regenerate docs/results.md from the scores files alone")
    pg.add_argument("--scores", default="docs/scores", help="folder of scores files (default docs/scores)")
    pg.add_argument("--out", help="write the page here (default: print it)")
    pg.set_defaults(func=cmd_page)
