"""Run manifests: config, data hash, git revision, versions and timings of a run."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import personalign

_PACKAGES = ("torch", "transformers", "llama_cpp_python", "sentence-transformers", "bm25s", "rouge-score",
             "scikit-learn", "trl", "peft")


def git_revision(path: str | Path | None = None) -> str | None:
    """The repository's HEAD commit (with '-dirty' when it has uncommitted changes), or None."""
    cwd = str(path or Path(personalign.__file__).resolve().parent)
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def config_record(config: Any) -> Any:
    """A typed config as JSON-ready data: a pydantic model's ``model_dump`` (objects such as a ready
    backend recorded by their text), a dataclass's fields, anything else as it is."""
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json", fallback=repr)
    return asdict(config) if is_dataclass(config) else config


def write_manifest(path: str | Path, config: Any, data_hash: str | None, extra: dict[str, Any] | None = None) -> dict:
    """Write ``manifest.json`` (config, data hash, git revision, versions, machine) and return it."""
    manifest = {
        "personalign": personalign.__version__,
        "config": config_record(config),
        "data_sha256": data_hash,
        "git_revision": git_revision(),
        "packages": package_versions(),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    from personalign.data.lamp_io import atomic_writer

    with atomic_writer(path) as handle:  # a crash or a full disk never leaves half a manifest
        handle.write(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest
