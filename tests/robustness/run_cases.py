"""Run CLI cases in-process under a memory cap and report, per case, the exit code, stderr, how far its
peak RSS rose above the RSS it started from, and the address-space cap in force.

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


def status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> None:
    """Start a new peak: ``VmHWM`` becomes the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


for case in json.load(open(cases_path)):
    reset_peak()
    before = status_bytes("VmRSS")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(case["argv"])
        except SystemExit as exc:  # argparse's own usage errors exit 2
            code = exc.code
        except BaseException:
            code = "traceback"
            err.write(traceback.format_exc())
    print(json.dumps({"name": case["name"], "code": code, "stderr": err.getvalue(), "rss_growth": status_bytes("VmHWM") - before,
                      "address_space_cap": resource.getrlimit(resource.RLIMIT_AS)[0]}), flush=True)
