"""The RPO demo's training: checkpoints of a model with tied embeddings, and RL groups that can differ."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from personalign.rpo.config import load_config
from personalign.train.checkpoint import TrainerState, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def tiny_tied_model():
    """A 2-layer Llama with tied input and output embeddings, as SmolLM2 has (random weights, no download)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def test_a_tied_model_checkpoints_without_the_shared_tensor_warning_and_reloads_both_names(tmp_path, caplog):
    from accelerate import Accelerator

    from safetensors.torch import load_file

    accelerator = Accelerator(cpu=True)
    model = tiny_tied_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(TrainerState())
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert head is embed  # tied: one tensor under two names
    saved = embed.detach().clone()

    with caplog.at_level(logging.WARNING):
        checkpoint = save_checkpoint(accelerator, tmp_path, {"run": 1})
    assert not [r for r in caplog.records if "shared tensor" in r.getMessage()]
    stored = load_file(checkpoint / "model.safetensors")
    assert "model.embed_tokens.weight" in stored and "lm_head.weight" not in stored  # the tensor, once

    with torch.no_grad():
        embed.add_(1.0)  # training moved on after the checkpoint
    accelerator.load_state(str(checkpoint))
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert head is embed and torch.equal(embed, saved) and torch.equal(head, saved)  # both names restored, still tied


def test_the_demo_rl_config_keeps_the_sampling_that_stopped_the_ties():
    """A config guard: the measured effect (0% tied groups, from 100%) is in docs/demo.md; training the demo
    model here would take minutes."""
    config = load_config(str(ROOT / "configs" / "rpo" / "demo.yaml"), {})
    rl = config.rl
    # a 4-sample group of a confident model at temperature 1.0 tied every time in the old demo (RL learnt nothing)
    assert rl.samples_per_prompt >= 8 and rl.temperature > 1.0 and rl.top_p > 0.9
    assert rl.prompts_per_step >= 2  # a step learns from a group whose answers differ, when any does
