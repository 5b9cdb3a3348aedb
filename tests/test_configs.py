"""Every shipped YAML loads with the real loader; recipes inherit at most one level; paper.yaml is resumable."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs").rglob("*.yaml"))
EXPERIMENTS = sorted((ROOT / "experiments" / "configs").rglob("*.yaml"))


def _load(path: Path):
    """``path`` through the loader its command uses (``train rpo``, ``train popi``, ``serve``, ``eval``)."""
    kind = path.relative_to(ROOT).parts[-2] if path.parent.name != "ablations" else "rpo"
    if kind == "rpo":
        from personalign.rpo.config import load_config

        return load_config(path)
    if kind == "popi":
        from personalign.popi.train import load_popi_config

        return load_popi_config(path)
    if kind == "serve":
        from personalign.serve.config import load_serve_config

        return load_serve_config(path)
    if kind == "eval":
        from personalign.cli.eval import read_eval_config

        return read_eval_config(str(path))
    raise AssertionError(f"{path}: no loader for configs of kind {kind!r}")


def test_the_shipped_configs_are_found():
    assert {p.name for p in RECIPES} >= {"cpu.yaml", "gpu.yaml", "paper.yaml", "demo.yaml", "default.yaml"}
    assert len(EXPERIMENTS) >= 5


@pytest.mark.parametrize("path", RECIPES + EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_loads_and_inherits_at_most_one_level(path):
    _load(path)
    parent = (yaml.safe_load(path.read_text()) or {}).get("inherit")
    if parent:
        grandparent = (yaml.safe_load((path.parent / parent).read_text()) or {}).get("inherit")
        assert grandparent is None, f"{path.name} inherits {parent}, which inherits {grandparent}: one level at most"


def test_experiments_inherit_from_recipes_and_recipes_never_from_experiments():
    for path in RECIPES:
        parent = (yaml.safe_load(path.read_text()) or {}).get("inherit")
        if parent:
            assert (path.parent / parent).resolve().is_relative_to(ROOT / "configs"), path
    for path in EXPERIMENTS:
        parent = (yaml.safe_load(path.read_text()) or {}).get("inherit")
        if parent and "rpo" in path.parts:
            assert (path.parent / parent).resolve().parent == ROOT / "configs" / "rpo", path


def test_paper_recipe_is_the_resumable_7b_run_with_api_models():
    from personalign.backends import backend_options
    from personalign.registry import load

    config = _load(ROOT / "configs" / "rpo" / "paper.yaml")
    assert config.sft.model == "Qwen/Qwen2.5-7B-Instruct"
    assert config.sft.checkpoints > 0, "a multi-hour SFT run needs resumable checkpoints"
    assert config.rl.save_every > 0, "a multi-hour RL run needs resumable checkpoints"
    traj = config.trajectories
    assert traj.teacher_llm.startswith("openai:") and traj.base_llm.startswith("openai:")
    assert traj.template_fallback is False and traj.llm_teacher_examples is None  # every SFT target from the API teacher
    openai = load("backends", "openai")
    for options in (traj.base_llm_options, traj.teacher_llm_options):
        try:  # the options reach the openai backend as they are: llama.cpp's (quant, n_threads) would be refused
            inspect.signature(openai).bind(None, **options)
        except TypeError as exc:
            pytest.fail(f"paper.yaml's options {options} do not fit the openai backend ({exc}); it takes {backend_options('openai')}")


def test_cpu_recipe_is_the_variant_chosen_on_validation():
    cpu, gpu = _load(ROOT / "configs" / "rpo" / "cpu.yaml"), _load(ROOT / "configs" / "rpo" / "gpu.yaml")
    for config in (cpu, gpu):
        assert config.trajectories.teacher_llm == "template" and config.trajectories.template_style == "prior"
    assert cpu.train_part == "train"  # all train users; the fit-part variants live in experiments/


def test_the_package_never_imports_experiments_or_bench():
    import ast

    found = []
    for path in (ROOT / "personalign").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("experiments", "bench")]
    assert not found, found
