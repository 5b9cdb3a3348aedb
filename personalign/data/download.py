"""Download the official LaMP benchmark files (Salemi et al., 2023) into Personalign's data layout.

URL layout, from the LaMP download page (lamp-benchmark.github.io/download) as used by public LaMP
loaders (checked in several public repositories' download scripts, not fetched live):

- user split: ``{base}/LaMP_N/{part}/{part}_{questions|outputs}.json``
- time split: ``{base}/time/LaMP_N/{part}/{part}_{questions|outputs}.json``
- LaMP_2 (movie tagging, the current task) lives under ``LaMP_2/new/`` (``LaMP_2/`` alone is the
  retired news-categorization task); its time-split path ``time/LaMP_2/new/`` was seen in only one
  public loader, so it is the least certain of these URLs.

Test parts have no outputs file. LaMP_6 cannot be downloaded: its questions refer to e-mails of the
Avocado corpus (LDC2015T03), which is licensed separately.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from personalign.data.lamp_io import SPLITS, atomic_writer, one_line
from personalign.errors import ConfigError, PersonalignError

OFFICIAL_BASE = "https://ciir.cs.umass.edu/downloads/LaMP"
TASKS = ("LaMP_1", "LaMP_2", "LaMP_3", "LaMP_4", "LaMP_5", "LaMP_7")
FILES = (("train", "questions"), ("train", "outputs"), ("dev", "questions"), ("dev", "outputs"),
         ("test", "questions"))
_CHUNK = 1 << 20


def lamp_url(task_name: str, split: str, part: str, kind: str, base_url: str = OFFICIAL_BASE) -> str:
    """The URL of one official LaMP file (``kind`` is "questions" or "outputs")."""
    task_dir = f"{task_name}/new" if task_name == "LaMP_2" else task_name
    prefix = "time/" if split == "time" else ""
    return f"{base_url.rstrip('/')}/{prefix}{task_dir}/{part}/{part}_{kind}.json"


def _fetch(client: httpx.Client, url: str, dest: Path, folder: Path) -> None:
    """Stream ``url`` into ``dest`` (atomically), with one-line errors that say what to do instead."""
    by_hand = f"download it by hand and save it as {dest} (all files go in {folder})"
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                reason = response.reason_phrase or "error"
                raise PersonalignError(f"cannot download {url}: HTTP {response.status_code} {reason}; {by_hand}")
            with atomic_writer(dest, "wb") as handle:
                for chunk in response.iter_bytes(_CHUNK):
                    handle.write(chunk)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise PersonalignError(f"cannot download {url}: invalid URL ({one_line(exc)})") from None
    except httpx.TimeoutException:
        raise PersonalignError(f"cannot download {url}: the network is unreachable (timed out); {by_hand}") from None
    except httpx.TransportError as exc:
        kind = type(exc).__name__
        raise PersonalignError(f"cannot download {url}: the network is unreachable ({kind}); {by_hand}") from None
    except OSError as exc:
        raise PersonalignError(f"cannot write {dest}: {exc.strerror or exc}") from None


def download_lamp(task_name: str, split: str, out_dir: str | Path, base_url: str = OFFICIAL_BASE,
                  timeout: float = 30, force: bool = False) -> list[Path]:
    """Fetch a LaMP task's train/dev questions+outputs and test questions into ``out_dir/<task>/<split>/``.

    Files already present are kept unless ``force``. Returns the paths of all five files.
    """
    if task_name == "LaMP_6":
        raise ConfigError("LaMP_6 cannot be downloaded: it needs the Avocado e-mail corpus (LDC2015T03); "
                          "build the files yourself and put them in <data_dir>/LaMP_6/<split>/")
    if task_name not in TASKS:
        raise ConfigError(f"unknown LaMP task '{task_name}'; choose from: {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; choose from: {', '.join(SPLITS)}")
    folder = Path(out_dir) / task_name / split
    paths = []
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for part, kind in FILES:
            dest = folder / f"{part}_{kind}.json"
            if force or not dest.is_file():
                _fetch(client, lamp_url(task_name, split, part, kind, base_url), dest, folder)
            paths.append(dest)
    return paths
