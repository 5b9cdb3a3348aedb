"""Export a trained reflection model (a transformers folder) to GGUF, for fast CPU serving with llama.cpp.

The conversion is llama.cpp's own ``convert_hf_to_gguf.py``, taken from the llama-cpp-python source
distribution of the installed version (so the GGUF format matches the runtime). ``make setup`` fetches
it once, with the other packages, into the environment (``python -m personalign.train.export --fetch``);
``export`` itself never touches the network. It is found at ``$LLAMA_CPP_CONVERT_SCRIPT``, else in
the environment's ``share/personalign/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from personalign.errors import ConfigError

OUT_TYPES = ("f32", "f16", "bf16", "q8_0")
_KEEP = ("convert_hf_to_gguf.py", "conversion", "gguf-py")  # what the converter needs from the source tree


def converter_script() -> Path:
    """Path to ``convert_hf_to_gguf.py`` (with its ``conversion/`` and ``gguf-py/`` beside it)."""
    if os.environ.get("LLAMA_CPP_CONVERT_SCRIPT"):
        script = Path(os.environ["LLAMA_CPP_CONVERT_SCRIPT"])
        if not script.is_file():
            raise ConfigError(f"LLAMA_CPP_CONVERT_SCRIPT={script} does not exist")
        return script
    try:
        runtime = version("llama-cpp-python")
    except PackageNotFoundError:
        raise ConfigError("GGUF export needs llama-cpp-python installed (pip install llama-cpp-python)") from None
    folder = converter_dir(runtime)
    if not (folder / "convert_hf_to_gguf.py").is_file():
        raise ConfigError(f"the llama.cpp converter is not installed at {folder}: run `make setup`, or once with "
                          "network access `python -m personalign.train.export --fetch`; or set LLAMA_CPP_CONVERT_SCRIPT")
    return folder / "convert_hf_to_gguf.py"


def converter_dir(runtime: str) -> Path:
    """Where setup puts the converter of llama-cpp-python ``runtime``: inside the Python environment."""
    return Path(sys.prefix) / "share" / "personalign" / f"llama.cpp-convert-{runtime}"


def fetch_converter() -> Path:
    """Install time only: fetch the converter of the installed llama-cpp-python (``pip download``)."""
    runtime = version("llama-cpp-python")
    folder = converter_dir(runtime)
    if not (folder / "convert_hf_to_gguf.py").is_file():
        _fetch_converter(runtime, folder)
    return folder / "convert_hf_to_gguf.py"


def _fetch_converter(runtime: str, folder: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={runtime}", "--no-deps",
               "--no-binary", ":all:", "-d", tmp, "-q"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode or not archives:
            raise ConfigError(f"cannot fetch the llama.cpp converter (pip download llama-cpp-python=={runtime}): "
                              f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}; "
                              "set LLAMA_CPP_CONVERT_SCRIPT to a convert_hf_to_gguf.py instead")
        with tarfile.open(archives[0]) as archive:
            archive.extractall(tmp, filter="data")
        source = next(Path(tmp).glob("llama_cpp_python-*/vendor/llama.cpp"))
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in _KEEP:
            (shutil.copytree if (source / name).is_dir() else shutil.copy2)(source / name, staging / name)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)


def export_gguf(model_dir: str | Path, out: str | Path | None = None, out_type: str = "f16") -> Path:
    """Convert ``model_dir`` (config.json + safetensors + tokenizer) to ``out`` (default ``<model_dir>.<type>.gguf``)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir}: not a transformers model folder (no config.json)")
    if out_type not in OUT_TYPES:
        raise ConfigError(f"unknown GGUF type '{out_type}'; choose from: {', '.join(OUT_TYPES)}")
    out = Path(out) if out else model_dir.with_name(f"{model_dir.name}.{out_type}.gguf")
    script = converter_script()
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(script.parent / "gguf-py"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), str(model_dir), "--outfile", str(partial), "--outtype", out_type],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        partial.unlink(missing_ok=True)
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"{model_dir}: GGUF conversion failed: {last[0]}")
    partial.replace(out)
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["--fetch"]:
        sys.exit("usage: python -m personalign.train.export --fetch   (install time: fetch the llama.cpp converter)")
    try:
        print(fetch_converter())
    except ConfigError as exc:
        sys.exit(f"personalign: error: {exc}")
