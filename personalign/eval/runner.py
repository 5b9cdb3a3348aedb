"""``personalign eval``: run methods over a LaMP split, resumably, and score them."""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from personalign.backends import get_llm
from personalign.backends.base import LLM
from personalign.data.lamp_io import files_sha256, find_split_files, load_split, write_outputs
from personalign.errors import ConfigError
from personalign.eval.predictions import PredictionLog
from personalign.eval.report import results_table
from personalign.manifest import write_manifest
from personalign.methods import build_method
from personalign.methods.base import MethodConfig
from personalign.retrievers import get_retriever
from personalign.tasks import get_task
from personalign.tasks.metrics import compute_metrics
from personalign.types import Example


@dataclass
class EvalConfig:
    """Every setting of an evaluation run (written to the run's manifest)."""

    data: str
    task: str
    methods: list[str]
    split: str = "user"
    part: str = "dev"
    retriever: str = "bm25"
    llm: str = "llamacpp"
    llm_options: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    seed: int = 0
    out: str = "runs"
    cache_dir: str = ".cache/personalign"
    method: MethodConfig = field(default_factory=MethodConfig)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.task / f"{self.split}-{self.part}"


def sample_examples(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded sample of ``limit`` examples, kept in file order."""
    if limit is None or limit >= len(examples):
        return examples
    chosen = set(random.Random(seed).sample(range(len(examples)), limit))
    return [ex for i, ex in enumerate(examples) if i in chosen]


def _row(example: Example, answer, gold: str | None, seconds: float) -> dict[str, Any]:
    return {"id": example.id, "output": answer.text, "gold": gold, "seconds": round(seconds, 4),
            "trace": answer.trace.to_dict()}


def summarize_rows(task, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Official metrics plus fallback rate, token and time averages for one method's rows."""
    n = len(rows)
    metrics = compute_metrics(task, [r["output"] for r in rows], [r["gold"] for r in rows]) if n else {}
    traces = [r["trace"] for r in rows]
    return {
        **metrics,
        "n": n,
        "fallback_rate": sum(bool(t["extra"].get("fallback")) for t in traces) / max(n, 1),
        "prompt_tokens/ex": sum(t["prompt_tokens"] for t in traces) / max(n, 1),
        "completion_tokens/ex": sum(t["completion_tokens"] for t in traces) / max(n, 1),
        "s/ex": sum(r["seconds"] for r in rows) / max(n, 1),
        "wall_s": sum(r["seconds"] for r in rows),
    }


def run_method(name: str, config: EvalConfig, examples: list[Example], golds: dict[str, str] | None,
               llm: LLM | None) -> dict[str, Any]:
    """Run one method over the examples, appending to its prediction log; return its results."""
    task = get_task(config.task)
    cache = Path(config.cache_dir)
    options = config.method_options.get(name, {})
    method = build_method(name, task, llm=llm, retriever=get_retriever(config.retriever, seed=config.seed, cache_dir=cache),
                          config=config.method, cache_dir=cache, **options)
    run_dir = config.run_dir
    log_path = run_dir / "predictions" / f"{name}.jsonl"
    _check_settings(log_path, {
        "method": name, "options": options, "llm": config.llm if method.needs_llm else None,
        "llm_options": config.llm_options if method.needs_llm else None, "retriever": config.retriever,
        "method_config": asdict(config.method)})
    with PredictionLog(log_path) as log:
        todo = [ex for ex in examples if ex.id not in log]
        for example in tqdm(todo, desc=f"{config.task} {name}", unit="ex", file=sys.stderr,
                            initial=len(examples) - len(todo), total=len(examples)):
            start = time.perf_counter()
            answer = method.answer(example, example.profile)
            log.append(_row(example, answer, golds.get(example.id) if golds else None, time.perf_counter() - start))
        rows = [log.rows[ex.id] for ex in examples]
    write_outputs(run_dir / f"{name}_outputs.json", task.name, [(r["id"], r["output"]) for r in rows])
    return summarize_rows(task, rows) if golds else {"n": len(rows)}


def _check_settings(log_path: Path, settings: dict[str, Any]) -> None:
    """Record what a prediction log was made with (``<method>.settings.json``); refuse to resume it otherwise."""
    settings = json.loads(json.dumps(settings, default=str))
    path = log_path.with_suffix(".settings.json")
    if path.exists():
        earlier = json.loads(path.read_text())
        if earlier != settings:
            changed = sorted(k for k in settings.keys() | earlier.keys() if settings.get(k) != earlier.get(k))
            raise ConfigError(f"{log_path}: made with different {', '.join(changed)}; "
                              "use another --out or method label (name@label), or delete it to start over")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))


def run_eval(config: EvalConfig, llm: LLM | None = None) -> dict[str, dict[str, Any]]:
    """Evaluate every method of ``config``; write predictions, metrics.json, results.md and a manifest."""
    task = get_task(config.task)
    examples, golds = load_split(config.data, task, config.split, config.part)
    examples = sample_examples(examples, config.limit, config.seed)
    paths = [p for p in find_split_files(config.data, task.name, config.split, config.part) if p]
    write_manifest(config.run_dir / "manifest.json", config, files_sha256(paths),
                   {"examples": len(examples), "status": "running"})
    if llm is None and any(_needs_llm(m) for m in config.methods):
        llm = get_llm(config.llm, cache_path=Path(config.cache_dir) / "llm.sqlite", **config.llm_options)
    results = {name: run_method(name, config, examples, golds, llm) for name in config.methods}
    metrics_path = config.run_dir / "metrics.json"  # read after the run: other processes may add methods meanwhile
    earlier = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    results = {**{k: v for k, v in earlier.items() if k not in results}, **results}  # methods accumulate per run dir
    metrics_path.write_text(json.dumps(results, indent=2))
    table = results_table(results, list(task.metrics)) if golds else ""
    (config.run_dir / "results.md").write_text(f"## {task.name} ({config.split} split, {config.part})\n\n{table}\n")
    write_manifest(config.run_dir / "manifest.json", config, files_sha256(paths),
                   {"examples": len(examples), "status": "done", "llm": llm.describe() if llm else None,
                    "results": results})
    return results


def _needs_llm(name: str) -> bool:
    from personalign import registry
    from personalign.methods import base_name

    return registry.load("methods", base_name(name)).needs_llm
