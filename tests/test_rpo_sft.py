"""RPO SFT stage: prompt-completion records (no gold in the prompt) and a tiny real TRL run on SmolLM2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from personalign.errors import ConfigError
from personalign.rpo.config import RPOConfig
from personalign.rpo.prompts import format_reflection, reflection_messages
from personalign.tasks import get_task
from personalign.train.sft import sft_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")


GOLD = "ZQXJ-SENTINEL-GOLD"  # appears only in the targets
TASK = get_task("LaMP_2")


def _trajectories(n: int = 4) -> list[dict]:
    rows = []
    for i in range(n):
        history = [{"description": f"a film about robots number {i} " + "and more " * (150 if i == 0 else 2),
                    "tag": "sci-fi"}]
        messages = reflection_messages(TASK, f"Which tag? description: a heist on Mars, part {i}", "action", history,
                                       item_max_words=None)
        rows.append({"messages": messages, "target": format_reflection("The user tags space films sci-fi.", GOLD),
                     "accepted": True})
    return rows


def _config(**sft) -> RPOConfig:
    return RPOConfig(task="LaMP_2", sft={"batch_size": 2, "max_length": 256, "epochs": 1, "learning_rate": 1e-5, **sft})


class _CharTokenizer:
    """A stand-in tokenizer: one token per character, chat rendered as role: content lines."""

    def apply_chat_template(self, messages, tokenize=False):
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages)

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text)}


def test_sft_records_use_prompt_completion_and_fit_max_length():
    records = sft_records(_trajectories(2), _CharTokenizer(), max_length=1000)
    assert records[0]["completion"] == [{"role": "assistant", "content": _trajectories(1)[0]["target"]}]
    assert all(GOLD not in m["content"] for r in records for m in r["prompt"])
    rendered = _CharTokenizer().apply_chat_template(records[0]["prompt"] + records[0]["completion"])
    assert len(rendered) <= 1000 and " ... " in records[0]["prompt"][0]["content"]  # the long history was cut
    assert records[1]["prompt"] == _trajectories(2)[1]["messages"]  # short prompts are left alone


@pytest.mark.parametrize("bad", [{"messages": [], "target": "x"}, {"messages": [{"role": "user", "content": "q"}]}])
def test_sft_records_reject_malformed_trajectories(bad):
    with pytest.raises(ConfigError):
        sft_records([bad], _CharTokenizer(), 100)


@pytest.mark.parametrize("sft", [{"warmup_ratio": 1.0}, {"batch_size": 0}, {"checkpoints": -1}])
def test_a_bad_sft_config_is_refused_by_name_before_a_model_loads(sft):
    (name,) = sft
    with pytest.raises(ConfigError, match=f"^RPOConfig: sft.{name}: "):
        RPOConfig(sft={"model": "/nonexistent", **sft})


@pytest.mark.model
def test_tiny_sft_run_on_the_bundled_model(tmp_path):
    from personalign.train.model_io import load_trainable
    from personalign.rpo.sft import train_sft
    from personalign.train.sft import SFTTrainer

    trainer = SFTTrainer(_config().sft, _trajectories(), tmp_path / "inspect").trainer
    tokenizer = trainer.processing_class
    for row in trainer.train_dataset:
        prompt = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label == -100])
        completion = tokenizer.decode([t for t in row["labels"] if t != -100])
        assert GOLD not in prompt and "heist on Mars" in prompt  # the loss never sees the prompt; no gold there
        assert GOLD in completion and completion.startswith("<think>") and len(row["input_ids"]) <= 256
    del trainer

    summary = train_sft(_config(), _trajectories(), tmp_path / "sft")
    log = [json.loads(line) for line in (tmp_path / "sft" / "sft_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(math.isfinite(r["loss"]) and r["lr"] is not None for r in log)
    assert summary["steps"] == 2 and math.isfinite(summary["final_loss"]) and summary["tokens_per_second"] > 0
    model, tok = load_trainable(tmp_path / "sft" / "model")
    assert model.config.model_type == "llama" and tok.pad_token is not None

    again = train_sft(_config(), _trajectories(), tmp_path / "sft")  # resumes from the last checkpoint: no new steps
    assert again["resumed_from"] and again["steps"] == 2

    # served through llama.cpp after GGUF export: the same greedy answer as transformers
    from personalign.backends import get_llm
    from personalign.train.export import export_gguf
    from personalign.types import GenParams

    # f32 keeps greedy answers identical to transformers; f16 (the default, half the size) need not
    gguf = export_gguf(tmp_path / "sft" / "model", out_type="f32")
    assert gguf == tmp_path / "sft" / "model.f32.gguf" and not gguf.with_name(gguf.name + ".partial").exists()
    params = GenParams(max_tokens=12, temperature=0.0)
    served_llm = get_llm(f"llamacpp:{gguf}", n_threads=1)
    reference = get_llm(f"transformers:{tmp_path / 'sft' / 'model'}")
    for row in _trajectories(3):
        served = served_llm.chat(row["messages"], params).text
        assert served.strip() and served == reference.chat(row["messages"], params).text
    f16 = export_gguf(tmp_path / "sft" / "model")
    assert f16.name == "model.f16.gguf" and get_llm(f"llamacpp:{f16}", n_threads=1).chat(_trajectories(1)[0]["messages"],
                                                                                        params).text.strip()


def test_export_needs_no_network(monkeypatch):
    """The converter comes with ``make setup``; export itself never runs ``pip download``."""
    import personalign.train.export as export

    monkeypatch.delenv("LLAMA_CPP_CONVERT_SCRIPT", raising=False)
    monkeypatch.setattr(export, "_fetch_converter", lambda *a: pytest.fail("export tried to fetch the converter"))
    monkeypatch.setattr(export.subprocess, "run", lambda *a, **k: pytest.fail(f"export ran {a}"))
    script = export.converter_script()
    assert script.is_file() and (script.parent / "gguf-py").is_dir()


def test_export_gguf_rejects_a_folder_without_a_model(tmp_path):
    from personalign.train.export import export_gguf

    with pytest.raises(ConfigError, match="not a transformers model folder"):
        export_gguf(tmp_path)


def test_plot_sft_loss(tmp_path):
    from personalign.rpo.plots import plot_sft_loss

    log = tmp_path / "sft_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 3.0 / s, "lr": 1e-5}) + "\n" for s in range(1, 5)))
    png = plot_sft_loss(log, tmp_path / "sft.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_later_stages_take_the_data_hash_from_the_trajectories_manifest(tmp_path):
    """SFT and RL never read the data (a GPU machine has none): their manifests copy the trajectories' hash."""
    from personalign.errors import DataError
    from personalign.rpo.pipeline import _data_hash, stage_dir

    config = RPOConfig(task="LaMP_2", data=str(tmp_path / "no-data"), out=str(tmp_path / "runs"))
    with pytest.raises(DataError):
        _data_hash(config, "sft")  # no trajectories manifest yet: the data itself is needed
    stage_dir(config, "trajectories").mkdir(parents=True)
    (stage_dir(config, "trajectories") / "manifest.json").write_text(json.dumps({"data_sha256": "abc123"}))
    assert _data_hash(config, "sft") == _data_hash(config, "rl") == "abc123"
    with pytest.raises(DataError):
        _data_hash(config, "trajectories")


def test_sft_arguments_turn_checkpointing_off_under_either_transformers_name(tmp_path):
    from personalign.train.sft import trl_sft_args

    args = trl_sft_args(_config().sft, tmp_path, 8)
    assert getattr(args, "activation_checkpointing", getattr(args, "gradient_checkpointing", None)) is False


def test_sft_checkpoints_and_length_grouping_reach_the_trainer_arguments(tmp_path):
    from personalign.train.sft import trl_sft_args

    sft = _config().sft
    default = trl_sft_args(sft, tmp_path, 64)
    assert default.save_strategy == "steps" and default.train_sampling_strategy == "random"
    short = trl_sft_args(sft.model_copy(update={"checkpoints": 0, "group_by_length": True}), tmp_path, 64)
    assert short.save_strategy == "no" and short.train_sampling_strategy == "group_by_length"
    assert not default.use_liger_kernel and not default.torch_compile and default.pad_to_multiple_of is None
    fast = trl_sft_args(sft.model_copy(update={"liger_kernel": True, "torch_compile": True, "pad_to_multiple_of": 128}),
                        tmp_path, 64)
    assert fast.use_liger_kernel and fast.torch_compile and fast.pad_to_multiple_of == 128


def test_step_clock_leaves_the_first_step_out_of_steady_throughput():
    from personalign.train.sft import StepClock

    clock = StepClock()
    clock.marks = [(10.0, 1000), (11.0, 3000), (13.0, 7000)]  # (seconds, tokens seen) at each step's end
    assert clock.steady_tokens_per_second() == 2000.0     # (7000 - 1000) / (13 - 10)
    assert clock.step_seconds(start=4.0) == [6.0, 1.0, 2.0]
    assert StepClock().steady_tokens_per_second() is None


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs" / "rpo").rglob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_rpo_config_loads_with_known_keys(path):
    from personalign.rpo.config import load_config
    from personalign.rpo.rewards import format_penalty

    config = load_config(path)
    assert config.rl.epochs >= 1 and config.sft.batch_size >= 1
    format_penalty(get_task(config.task), config.rl.format_penalty)  # never above the worst valid reward
