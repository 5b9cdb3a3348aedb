"""Run CLI cases in-process under a memory cap and report, per case, the exit code and stderr.

Usage: python run_cases.py CASES.json MEMORY_BYTES  ->  prints one JSON object per case.
Any exception that escapes ``personalign.cli.main`` is reported as a traceback.
"""

import contextlib
import io
import json
import resource
import sys
import traceback

cases_path, memory = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

from personalign.cli import main  # noqa: E402


def peak_rss() -> int:
    """This process's own peak RSS in bytes. ``VmHWM`` belongs to the address space made at exec;
    ``ru_maxrss`` also carries the parent's RSS at fork (pytest's, with models loaded by earlier tests)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


for case in json.load(open(cases_path)):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(case["argv"])
        except SystemExit as exc:  # argparse's own usage errors exit 2
            code = exc.code
        except BaseException:
            code = "traceback"
            err.write(traceback.format_exc())
    print(json.dumps({"name": case["name"], "code": code, "stderr": err.getvalue(), "peak_rss": peak_rss()}), flush=True)
