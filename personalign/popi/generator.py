"""``personalign train popi generator``: POPI's generator fine-tuned on summary-conditioned golds.

The paper optimizes the generator under the same objective as the summarizer. Here the generator is
fine-tuned (the shared SFT stage, ``personalign.train.sft``) to answer the train users' questions from the summary that the
summarizer wrote of their history: prompt ``conditioned_input(input, summary)``, exactly as the ``popi``
method asks it, target the gold. The model goes to ``<out>/<task>/generator/model``; ``personalign
export`` makes it a GGUF that serves as ``--llm llamacpp:PATH`` and as the RL reward's ``generator``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from personalign.backends import get_llm, model_spec
from personalign.engine import answer_requests
from personalign.manifest import write_manifest
from personalign.popi.summary import conditioned_input, enforce_budget, summary_messages
from personalign.popi.train import train_questions
from personalign.store import default_cache_dir
from personalign.tasks import get_task
from personalign.train.distributed import main_process
from personalign.train.sft import SFTTrainer
from personalign.types import GenParams, Request


def generator_records(examples: list, golds: dict[str, str], summaries: list[str]) -> list[dict]:
    """SFT records: the summary-conditioned prompt the ``popi`` method sends, and the gold as target."""
    return [{"id": e.id, "summary": s, "messages": [{"role": "user", "content": conditioned_input(e.input, s)}],
             "target": golds[e.id]} for e, s in zip(examples, summaries)]


def write_summaries(config: Any, examples: list, cache_dir: str | None) -> list[str]:
    """Each example's budgeted summary by ``config.summarizer`` (greedy; cached like every LLM call)."""
    task = get_task(config.task)
    cache = Path(cache_dir or default_cache_dir()) / "llm.sqlite"
    spec, counter_spec = model_spec(config.summarizer), model_spec(config.generator_sft.model)
    summarizer = get_llm(spec, cache_path=cache, **config.summarizer_options)
    # the budget is counted in the tokens of the generator being trained (often the same model: loaded once)
    counter = summarizer if counter_spec == spec else get_llm(counter_spec, cache_path=cache, **config.summarizer_options)
    params = GenParams(max_tokens=2 * config.summary_budget, temperature=0.0, seed=config.seed)
    settings = config.method_config  # the summary prompt of the popi method
    requests = [Request(summary_messages(task, e.profile, settings.summary_items, settings.item_max_words,
                                         config.summary_budget), params, stage="summarize") for e in examples]
    texts: list[str] = []
    for start in tqdm(range(0, len(requests), 8), desc=f"{config.task} summaries", unit="x8"):
        texts += [c.text for c in answer_requests(requests[start:start + 8], {"base": summarizer})]
    return [enforce_budget(text, config.summary_budget, counter.count_tokens) for text in texts]


def train_popi_generator(config: Any, cache_dir: str | None = None, resume: bool = True) -> dict[str, Any]:
    """Fine-tune ``config.generator_sft.model`` on ``generator_questions`` train questions; write ``<out>/<task>/generator``."""
    examples, golds, data_hash = train_questions(config, config.generator_questions, config.seed + 1)
    out = Path(config.out) / config.task / "generator"
    main = main_process()  # under `accelerate launch`, one process writes the manifest and the records
    if main:
        write_manifest(out / "manifest.json", config, data_hash, {"stage": "popi-generator", "status": "running"})
    out.mkdir(parents=True, exist_ok=True)
    records = generator_records(examples, golds, write_summaries(config, examples, cache_dir))
    if main:
        with (out / "records.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
    summary = SFTTrainer(config.generator_sft, records, out).train(resume)
    summary["empty_summaries"] = sum(1 for r in records if not r["summary"])
    if main:
        write_manifest(out / "manifest.json", config, data_hash, {"stage": "popi-generator", "status": "done", "summary": summary})
    return summary
