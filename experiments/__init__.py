"""The experiments behind docs/: validation variants, eval row configs, the lent-GPU job, shell drivers and
analyses of eval runs. Not part of the installed package: experiments import personalign, never the reverse.
Run a script as a module from the repository root, e.g. ``.venv/bin/python -m experiments.rpo_gpu --help``."""

import os

DATA_DIR = os.environ.get("PERSONALIGN_DATA") or "../shared/data/reallamp"
"""The LaMP-format data folder of every experiment: ``PERSONALIGN_DATA``, else the RealLaMP copy beside the
checkout (read in place, never copied into the repository). The shell drivers read it through data.sh."""
