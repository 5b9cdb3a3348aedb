"""The SFT stage shared by RPO and POPI: its config and a resumable TRL ``SFTTrainer`` wrapper.

A record is ``{"messages": <prompt messages>, "target": <completion text>}`` (RPO: the reflection prompt
and ``<think>…</think><personalized>…</personalized>``; POPI: the summary-conditioned prompt and the gold).
It becomes TRL's conversational prompt-completion record, so the loss covers the completion only.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import Field
from transformers import TrainerCallback

from personalign.backends import shorten_messages
from personalign.config import Settings
from personalign.errors import ConfigError
from personalign.train.model_io import load_trainable, save_model
from personalign.types import Messages


class SFTConfig(Settings):
    """Every hyperparameter of the SFT stage (RPO's reflection model, POPI's generator)."""

    model: str = "bundled"                 # "bundled" SmolLM2 GGUF, a GGUF path, or an HF folder/name
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(5e-6, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)  # a share of the total steps
    max_length: int = Field(2048, ge=1)
    max_examples: int | None = Field(None, ge=1)  # train on the first N records (RPO: accepted trajectories; None: all)
    lora: bool = False
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    checkpoints: int = Field(4, ge=0)      # resumable checkpoints per run (0: none, for short GPU runs)
    group_by_length: bool = False          # batches of similar length: less padding (GPU throughput)
    liger_kernel: bool = False             # Liger's fused RMSNorm, SwiGLU and RoPE kernels (CUDA + triton)
    torch_compile: bool = False            # torch.compile the model (GPU throughput; compiles on the first steps)
    pad_to_multiple_of: int | None = Field(None, ge=1)  # fewer distinct batch shapes, for torch_compile
    report_to: list[str] = []              # transformers trackers: "tensorboard", "wandb", ...
    seed: int = 0


def sft_records(rows: list[dict], tokenizer: Any, max_length: int | None) -> list[dict]:
    """TRL prompt-completion records; prompts are shortened (middle cut) so that prompt + target fit ``max_length``."""
    records = []
    for i, row in enumerate(rows):
        messages, target = row.get("messages"), row.get("target")
        if not isinstance(messages, list) or not messages or not isinstance(target, str) or not target.strip():
            raise ConfigError(f"SFT record {i}: needs a non-empty 'messages' list and a 'target' string")
        completion = [{"role": "assistant", "content": target}]
        if max_length:
            messages = shorten_messages(messages, lambda ms: _count(tokenizer, ms + completion), max_length)
        records.append({"prompt": messages, "completion": completion})
    return records


def _count(tokenizer: Any, messages: Messages) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


class StepClock(TrainerCallback):
    """A ``transformers`` callback: wall time and tokens seen at the end of each optimizer step.

    Steady-state figures leave out the first step (CUDA start-up, allocator growth), as throughput
    benchmarks do; ``tokens`` reads the trainer's running token count (TRL's ``_total_train_tokens``).
    """

    def __init__(self, tokens: Callable[[], int] = lambda: 0):
        self.tokens, self.marks = tokens, []  # marks: (seconds, tokens) per step

    def on_step_end(self, *_: Any, **__: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), self.tokens()))

    def step_seconds(self, start: float) -> list[float]:
        """Each step's seconds; ``start`` is when training began."""
        times = [start] + [t for t, _ in self.marks]
        return [round(b - a, 4) for a, b in zip(times, times[1:])]

    def steady_tokens_per_second(self) -> float | None:
        """Tokens per second from the end of step 1 to the end of the last step."""
        if len(self.marks) < 2 or self.marks[-1][0] <= self.marks[0][0]:
            return None
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return round((n1 - n0) / (t1 - t0), 1)


def checkpointing_field(args_class: Any) -> str:
    """The training-arguments field that turns activation checkpointing on or off, under either name."""
    names = {f.name for f in fields(args_class)}  # newer transformers call gradient_checkpointing this
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def trl_sft_args(sft: SFTConfig, checkpoints: Path, n_examples: int) -> Any:
    """TRL's ``SFTConfig`` for ``sft``: checkpoints under ``checkpoints``, ``sft.checkpoints`` of them per run."""
    from trl import SFTConfig as TRLSFTConfig

    cuda = torch.cuda.is_available()
    total_steps = math.ceil(math.ceil(n_examples / sft.batch_size) / sft.gradient_accumulation_steps * sft.epochs)
    checkpointing = checkpointing_field(TRLSFTConfig)
    return TRLSFTConfig(
        **{checkpointing: False},  # small models: speed over memory
        output_dir=str(checkpoints),
        num_train_epochs=sft.epochs,
        per_device_train_batch_size=sft.batch_size,
        gradient_accumulation_steps=sft.gradient_accumulation_steps,
        learning_rate=sft.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=sft.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        max_length=sft.max_length,
        completion_only_loss=True,
        seed=sft.seed,
        data_seed=sft.seed,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        fp16=False,
        logging_steps=1,
        report_to=list(sft.report_to),
        save_strategy="steps" if sft.checkpoints else "no",
        save_steps=max(1, math.ceil(total_steps / max(1, sft.checkpoints))),  # only the latest is kept
        save_total_limit=1,
        train_sampling_strategy="group_by_length" if sft.group_by_length else "random",
        use_liger_kernel=sft.liger_kernel,
        torch_compile=sft.torch_compile,
        pad_to_multiple_of=sft.pad_to_multiple_of,
        disable_tqdm=False,  # long CPU runs show progress
    )


class SFTTrainer:
    """The SFT stage: TRL's ``SFTTrainer`` on prompt-completion records, resumable, with a JSONL log.

    RPO fine-tunes its reflection model on teacher trajectories with it, POPI its generator on
    summary-conditioned golds.
    """

    def __init__(self, sft: SFTConfig, records: list[dict], out_dir: str | Path):
        if not records:
            raise ConfigError("SFT needs at least one record")
        self.sft, self.records, self.out_dir = sft, records, Path(out_dir)
        self._trainer: Any = None

    @property
    def trainer(self) -> Any:
        """The configured TRL ``SFTTrainer`` (built on first use; tests inspect its tokenized data)."""
        if self._trainer is None:
            from datasets import Dataset
            from trl import SFTTrainer as TRLSFTTrainer

            sft = self.sft
            model, tokenizer = load_trainable(sft.model)
            peft_config = None
            if sft.lora:
                from peft import LoraConfig

                peft_config = LoraConfig(r=sft.lora_r, lora_alpha=sft.lora_alpha, lora_dropout=0.05,
                                         target_modules="all-linear", task_type="CAUSAL_LM")
            dataset = Dataset.from_list(sft_records(self.records, tokenizer, sft.max_length))
            args = trl_sft_args(sft, self.out_dir / "checkpoints", len(dataset))
            self._trainer = TRLSFTTrainer(model=model, args=args, train_dataset=dataset,
                                          processing_class=tokenizer, peft_config=peft_config)
            self.clock = StepClock(lambda: int(getattr(self._trainer, "_total_train_tokens", 0)))
            self._trainer.add_callback(self.clock)
        return self._trainer

    def train(self, resume: bool = True) -> dict[str, Any]:
        """Fine-tune; the model goes to ``out_dir/model``, the loss curve to ``sft_log.jsonl``; a summary is returned."""
        from transformers.trainer_utils import get_last_checkpoint

        self.out_dir.mkdir(parents=True, exist_ok=True)
        trainer = self.trainer
        checkpoints = Path(trainer.args.output_dir)
        last = get_last_checkpoint(str(checkpoints)) if resume and checkpoints.is_dir() else None
        start = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=last)
        seconds = time.perf_counter() - start
        history = [entry for entry in trainer.state.log_history if "loss" in entry]
        sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
        if sharded:  # ZeRO-3 / FSDP shard the weights: HF's save gathers them (on every process); LoRA stays an adapter
            trainer.save_model(str(self.out_dir / "model"))
        if trainer.is_world_process_zero():  # under `accelerate launch` the first process writes, once
            if sharded:
                trainer.processing_class.save_pretrained(self.out_dir / "model")
            else:
                save_model(trainer.model, trainer.processing_class, self.out_dir / "model")
            with (self.out_dir / "sft_log.jsonl").open("w") as log:
                for entry in history:
                    row = {"step": entry.get("step"), "epoch": entry.get("epoch"), "loss": entry.get("loss"),
                           "lr": entry.get("learning_rate"), "grad_norm": entry.get("grad_norm"),
                           "num_tokens": entry.get("num_tokens"), "token_accuracy": entry.get("mean_token_accuracy")}
                    log.write(json.dumps(row) + "\n")
        trainer.accelerator.wait_for_everyone()  # the model is whole on disk before any process goes on
        tokens = int(getattr(trainer, "_total_train_tokens", 0))  # tokens seen in this call (prompt + completion)
        return {"steps": int(trainer.state.global_step), "examples": len(self.records),
                "final_loss": history[-1]["loss"] if history else None, "train_loss": result.training_loss,
                "seconds": round(seconds, 2), "tokens": tokens,
                "tokens_per_second": round(tokens / seconds, 1) if tokens and seconds > 0 else None,
                "tokens_per_second_steady": self.clock.steady_tokens_per_second(),
                "resumed_from": last, "model": str(self.out_dir / "model")}
