"""RPO RL stage: REINFORCE++-baseline advantages (hand-worked), curriculum, rewards, and a tiny real run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from personalign.errors import ConfigError
from personalign.rpo.config import ReflectionRLConfig as RLConfig
from personalign.rpo.config import RPOConfig
from personalign.train.curriculum import k_for_epoch, schedule
from personalign.rpo.rewards import format_penalty, task_reward
from personalign.rpo.rl import ReflectionRLTrainer, RLPrompt, train_rl
from personalign.train.advantages import (group_baseline, informative_groups, reinforce_pp_baseline, token_returns,
                                             whiten)
from personalign.train.checkpoint import check_resume
from personalign.train.rl import checkpoint_due, clipped_step, completion_mask, epoch_order, policy_loss
from personalign.tasks import get_task
from personalign.tasks.metrics import rouge_scores

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- advantages, worked by hand

REWARDS = torch.tensor([1.0, 0.0, 0.5, 0.5])  # two prompts x group size 2
MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])  # completion lengths 3, 2, 1, 3
KL = torch.tensor([[0.1, 0.2, 0.3], [0.4, -0.2, 9.0], [0.5, 9.0, 9.0], [0.0, 0.1, -0.1]])  # 9.0 = masked out


def test_group_baseline_subtracts_each_groups_mean():
    # group 1: mean 0.5 -> [0.5, -0.5]; group 2: mean 0.5 -> [0, 0]
    assert torch.allclose(group_baseline(REWARDS, 2), torch.tensor([0.5, -0.5, 0.0, 0.0]))


def test_token_returns_with_beta_zero_broadcast_the_centered_reward():
    returns = token_returns(torch.tensor([0.5, -0.5, 0.0, 0.0]), KL, MASK, beta=0.0)
    expected = torch.tensor([[0.5, 0.5, 0.5], [-0.5, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(returns, expected)


def test_token_returns_by_hand_with_kl_shaping():
    # beta = 0.5; per-token reward = -0.5 * KL_t, plus the centered reward on the last real token;
    # return A_t = sum of rewards from t to the end (gamma = 1); padding stays 0.
    # row 0 (r~=0.5, len 3): rewards [-0.05, -0.10, -0.15+0.5=0.35] -> returns [0.20, 0.25, 0.35]
    # row 1 (r~=-0.5, len 2): rewards [-0.20, 0.10-0.5=-0.40]       -> returns [-0.60, -0.40, 0]
    # row 2 (r~=0, len 1):    rewards [-0.25+0]                    -> returns [-0.25, 0, 0]
    # row 3 (r~=0, len 3):    rewards [0, -0.05, 0.05+0]            -> returns [0.00, 0.00, 0.05]
    centered = group_baseline(REWARDS, 2)
    returns = token_returns(centered, KL, MASK, beta=0.5)
    expected = torch.tensor([[0.20, 0.25, 0.35], [-0.60, -0.40, 0.0], [-0.25, 0.0, 0.0], [0.0, 0.0, 0.05]])
    assert torch.allclose(returns, expected, atol=1e-6)


def test_whiten_gives_masked_mean_zero_std_one_and_zero_padding():
    returns = token_returns(group_baseline(REWARDS, 2), KL, MASK, beta=0.5)
    white = whiten(returns, MASK)
    values = white[MASK.bool()]
    assert abs(float(values.mean())) < 1e-6
    assert abs(float(values.pow(2).mean()) - 1.0) < 1e-4  # population std over the 9 real tokens
    assert torch.all(white[~MASK.bool()] == 0)
    # the masked mean is (0.2+0.25+0.35-0.6-0.4-0.25+0+0+0.05)/9 = -0.4/9
    assert torch.allclose(white[0, 0], (0.2 + 0.4 / 9) / returns[MASK.bool()].std(unbiased=False), atol=1e-4)
    assert torch.allclose(reinforce_pp_baseline(REWARDS, KL, MASK, 2, 0.5), white)


def test_completion_mask_keeps_tokens_up_to_and_including_the_first_eos():
    tokens = torch.tensor([[5, 2, 2], [5, 6, 7], [2, 2, 2], [5, 6, 2]])
    expected = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
    assert torch.equal(completion_mask(tokens, {2}), expected)


def test_policy_loss_by_hand():
    # ratios [1.5, 0.5, 1.0], advantages [1, -1, 2], eps 0.2, third token masked out:
    # t0: -min(1.5*1, 1.2*1) = -1.2; t1: -min(0.5*-1, 0.8*-1) = 0.8  -> (-1.2 + 0.8) / 2 tokens = -0.2
    new = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))
    zeros, adv, mask = torch.zeros(1, 3), torch.tensor([[1.0, -1.0, 2.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    assert policy_loss(new, zeros, zeros, adv, mask, 2.0, 0.2).item() == pytest.approx(-0.2)
    # k2 KL loss, beta 0.1: 0.1 * 0.5 * (log(1.5)^2 + log(0.5)^2) / 2
    k2 = 0.1 * 0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 2
    assert policy_loss(new, zeros, zeros, adv, mask, 2.0, 0.2, kl_beta=0.1).item() == pytest.approx(-0.2 + k2)


def test_a_few_updates_on_a_toy_reward_raise_the_mean_reward():
    """The estimator and loss move a policy towards the reward: a toy categorical policy over 4 tokens,
    3 tokens per completion, reward = share of token 2, groups of 16 samples, KL to the start policy."""
    torch.manual_seed(0)
    logits = torch.zeros(3, 4, requires_grad=True)
    reference = torch.zeros(3, 4)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    mask = torch.ones(16, 3)

    def sample():
        with torch.no_grad():
            tokens = torch.distributions.Categorical(logits=logits).sample((16,))
        return tokens, (tokens == 2).float().mean(dim=1)

    def logp(table, tokens):
        return torch.log_softmax(table, dim=-1).gather(1, tokens.T).T

    start = float(sample()[1].mean())
    for _ in range(15):
        tokens, reward = sample()
        old = logp(logits, tokens).detach()
        ref = logp(reference, tokens)
        advantages = reinforce_pp_baseline(reward, old - ref, mask, group_size=16, beta=0.01)
        loss = policy_loss(logp(logits, tokens), old, ref, advantages, mask, mask.sum(), 0.2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = torch.stack([sample()[1].mean() for _ in range(20)]).mean()
    assert start < 0.4 and float(after) > 0.7  # from about 1/4 of the tokens to most of them


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_an_update_with_a_non_finite_gradient_is_skipped_and_the_weights_stay(bad):
    from accelerate import Accelerator

    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    before = [p.detach().clone() for p in layer.parameters()]
    layer(torch.ones(1, 2)).sum().backward()
    layer.weight.grad[0, 0] = bad
    assert clipped_step(Accelerator(cpu=True), layer, optimizer) is False
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters()))
    optimizer.zero_grad()
    layer(torch.ones(1, 2)).sum().backward()
    assert clipped_step(Accelerator(cpu=True), layer, optimizer) is True
    assert not torch.equal(before[0], layer.weight) and torch.isfinite(layer.weight).all()


# ---------------------------------------------------------------- curriculum

def test_curriculum_schedule():
    assert schedule(5) == [2, 3, 4, 5, 6]
    assert schedule(8, epochs_per_step=2) == [2, 2, 3, 3, 4, 4, 5, 5]
    assert schedule(9) == [2, 3, 4, 5, 6, 6, 6, 6, 6]  # capped at k_to
    assert schedule(3, k_from=4, k_to=4) == [4, 4, 4]  # a fixed k
    assert k_for_epoch(1) == 2 and k_for_epoch(100) == 6


@pytest.mark.parametrize("kwargs", [{"epoch": 0}, {"epoch": 1, "epochs_per_step": 0}, {"epoch": 1, "k_from": 7}])
def test_curriculum_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        k_for_epoch(**kwargs)


def test_epoch_order_is_seeded_and_cut_to_prompts_per_epoch():
    rl = RLConfig(prompts_per_epoch=3, seed=1)
    assert epoch_order(10, 2, rl) == epoch_order(10, 2, rl)
    assert len(epoch_order(10, 2, rl)) == 3 and len(set(epoch_order(10, 2, rl))) == 3
    assert sorted(epoch_order(4, 1, RLConfig(prompts_per_epoch=None))) == [0, 1, 2, 3]


@pytest.mark.parametrize("rl, named", [({"kl_mode": "k3"}, "rl.kl_mode"), ({"samples_per_prompt": 1}, "rl.samples_per_prompt"),
                                       ({"k_from": 5, "k_to": 3}, "rl: k_from (5) must not be above k_to (3)"),
                                       ({"micro_batch": 0}, "rl.micro_batch"), ({"save_every": -1}, "rl.save_every")])
def test_a_bad_rl_config_is_refused_by_name_when_it_is_read(rl, named):
    with pytest.raises(ConfigError, match=f"^RPOConfig: {re.escape(named)}"):
        RPOConfig(task="LaMP_3", rl=rl)


def test_train_rl_rejects_a_bad_format_penalty_before_loading_a_model(tmp_path):
    with pytest.raises(ConfigError):
        train_rl(RPOConfig(task="LaMP_3", rl={"format_penalty": -0.5, "epochs": 1}), [RLPrompt("x", "y", [], "3")],
                 "/nonexistent", tmp_path)


def test_checkpoints_come_every_save_every_steps_and_at_the_end_and_never_with_zero():
    assert [checkpoint_due(step, step == 7, 3) for step in range(1, 8)] == [False, False, True, False, False, True, True]
    assert not any(checkpoint_due(step, step == 7, 0) for step in range(1, 8))


# ---------------------------------------------------------------- rewards

def test_rewards():
    tags, rating, text = get_task("LaMP_2"), get_task("LaMP_3"), get_task("LaMP_5")
    assert task_reward(tags, "<think>likes jokes</think><personalized>comedy</personalized>", "comedy") == 1.0
    assert task_reward(tags, "<think>x</think><personalized>action</personalized>", "comedy") == 0.0
    assert task_reward(tags, "comedy", "comedy") == -1.0  # malformed: no tags
    assert task_reward(tags, "<think>x</think><personalized> </personalized>", "comedy", penalty=-0.5) == -0.5
    assert task_reward(rating, "<think>harsh</think><personalized>4</personalized>", "2") == -2.0
    assert task_reward(rating, "4", "2") == -5.0  # malformed: below the worst valid answer (-4)
    title = "Deep learning for graphs"
    got = task_reward(text, f"<think>short</think><personalized>{title}</personalized>", "Graph deep learning methods")
    assert got == pytest.approx(rouge_scores(title, "Graph deep learning methods")["rouge-1"]) and 0 < got < 1


def test_format_penalty_is_at_or_below_each_tasks_worst_valid_reward():
    """A malformed output (which falls back to A_base) must never outscore a well-formed bad answer."""
    for name in ("LaMP_2", "LaMP_3", "LaMP_5", "LaMP_6", "LaMP_7"):
        task = get_task(name)
        worst_valid = task_reward(task, "<think>x</think><personalized>1</personalized>", "5") if name == "LaMP_3" \
            else task_reward(task, "<think>x</think><personalized>zzz</personalized>", "the gold words" if name != "LaMP_2"
                             else "comedy")
        assert task_reward(task, "no tags at all", "5" if name == "LaMP_3" else "comedy") < worst_valid
        assert format_penalty(task) <= worst_valid
    assert format_penalty(get_task("LaMP_3")) == -5.0 and format_penalty(get_task("LaMP_3"), -4.0) == -4.0
    with pytest.raises(ConfigError, match="worst valid reward -4"):
        format_penalty(get_task("LaMP_3"), -1.0)  # the old default: reward hacking on ratings


# ---------------------------------------------------------------- tied groups and resume

def test_groups_whose_rewards_tie_get_no_advantage_and_do_not_scale_the_others():
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0])  # group 1 ties, group 2 varies
    keep = informative_groups(rewards, 4)
    assert keep.tolist() == [False] * 4 + [True] * 4
    mask = torch.ones(8, 3)
    kl = torch.rand(8, 3)  # nonzero KL shaping everywhere
    train_mask = mask * keep.float().unsqueeze(1)
    advantages = reinforce_pp_baseline(rewards, kl, train_mask, 4, beta=0.1)
    assert torch.all(advantages[:4] == 0)  # the tied group contributes no policy gradient
    alone = reinforce_pp_baseline(rewards[4:], kl[4:], mask[4:], 4, beta=0.1)
    assert torch.allclose(advantages[4:], alone, atol=1e-6)  # and whitening ignores it
    assert informative_groups(torch.zeros(4), 2).sum() == 0


def test_resume_is_refused_when_the_fingerprint_changed(tmp_path):
    saved = {"config": {"epochs": 5, "k_from": 2}, "init_model": "abc", "prompts_sha256": "p"}
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "fingerprint.json").write_text(json.dumps(saved))
    check_resume(tmp_path / "checkpoint", saved)  # the same run resumes
    changed = {"config": {"epochs": 6, "k_from": None}, "init_model": "def", "prompts_sha256": "p"}
    with pytest.raises(ConfigError) as err:
        check_resume(tmp_path / "checkpoint", changed)
    message = str(err.value)
    assert "config.epochs 5 → 6" in message and "config.k_from 2 → null" in message
    assert 'init_model "abc" → "def"' in message and "delete" in message and "\n" not in message


# ---------------------------------------------------------------- a tiny real run (bundled SmolLM2)

def _items(n: int) -> list[dict]:
    plots = ["a robot learns to love", "two friends rob a bank", "a wizard school", "aliens invade Paris",
             "a detective in the rain", "a comedian's last show"]
    tags = ["sci-fi", "action", "fantasy", "sci-fi", "classic", "comedy"]
    return [{"description": plots[i % 6], "tag": tags[i % 6]} for i in range(n)]


PROMPTS = [
    RLPrompt("Which tag? description: a spaceship crew wakes up on Mars", "sci-fi", _items(6), "sci-fi", "p1"),
    RLPrompt("Which tag? description: a clown tells jokes at a wedding", "romance", _items(6), "comedy", "p2"),
]


def _tiny_config(epochs: int) -> RPOConfig:
    rl = RLConfig(samples_per_prompt=4, max_new_tokens=12, epochs=epochs, prompts_per_step=2, prompts_per_epoch=2,
                  save_every=1, max_prompt_tokens=128, beta=0.05, learning_rate=1e-5, seed=3)
    return RPOConfig(task="LaMP_2", rl=rl, method_config={"item_max_words": 8})


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rl_log.jsonl").read_text().splitlines()]


class _Interrupt(Exception):
    pass


@pytest.mark.model
def test_tiny_rl_run_resumes_after_an_interruption_and_refuses_a_changed_config(tmp_path):
    from personalign.train.model_io import load_trainable

    out = tmp_path / "rl"
    trainer = ReflectionRLTrainer(_tiny_config(epochs=2), PROMPTS, "bundled", out)
    reward, calls = trainer.reward, []

    def interrupted(texts, rows):
        calls.append(len(texts))
        if len(calls) == 2:
            raise _Interrupt  # killed during step 2, after step 1's checkpoint
        return reward(texts, rows)

    trainer.reward = interrupted
    with pytest.raises(_Interrupt):
        trainer.train()
    rows = _log(out)
    assert [r["step"] for r in rows] == [1] and rows[0]["k"] == 2 and calls == [8, 8]
    assert rows[0]["first_ratio_error"] < 1e-4  # old and new log-probs come from one mode: the first ratio is 1
    assert 0.0 <= rows[0]["zero_variance_share"] <= 1.0 and math.isfinite(rows[0]["kl_mean"])
    assert 0 < rows[0]["tokens_generated"] <= 8 * 12

    second = train_rl(_tiny_config(epochs=2), PROMPTS, "bundled", out)
    rows = _log(out)
    assert [r["step"] for r in rows] == [1, 2] and (rows[1]["epoch"], rows[1]["k"]) == (2, 3)  # continued
    assert second["resumed_from_step"] == 1 and second["steps_this_run"] == 1 and second["steps"] == 2
    model, tokenizer = load_trainable(out / "model")
    assert model.config.model_type == "llama" and tokenizer.padding_side == "left"

    with pytest.raises(ConfigError, match="config.epochs 2 → 3"):
        train_rl(_tiny_config(epochs=3), PROMPTS, "bundled", out)
    assert [r["step"] for r in _log(out)] == [1, 2]  # the refused run lost nothing


# ---------------------------------------------------------------- plots

def test_plot_rl_curves_draws_one_line_per_run(tmp_path):
    from personalign.rpo.plots import plot_rl_curves

    logs = {}
    for label, scale in (("curriculum 2→6", 1.0), ("fixed k=4", 0.5)):
        path = tmp_path / f"{scale}.jsonl"
        path.write_text("".join(json.dumps({"step": s, "reward_mean": scale * s, "kl_mean": 0.01 * s}) + "\n"
                                for s in range(1, 4)))
        logs[label] = path
    png = plot_rl_curves(logs, tmp_path / "plots" / "rl.png")
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError):
        plot_rl_curves({"missing": tmp_path / "nope.jsonl"}, tmp_path / "x.png")
    from personalign.cli import main

    assert main(["plot", "rl", f"k4={logs['fixed k=4']}", str(logs["curriculum 2→6"]), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", "rl", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "d.png")]) == 2


@pytest.mark.model
def test_rl_stage_runs_under_accelerate_launch(tmp_path):
    """The trainers run under ``accelerate launch`` (one CPU process here; the docs give the multi-GPU command)."""
    import dataclasses
    import os
    import shutil
    import subprocess
    import sys

    import yaml

    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("accelerate's launcher is not installed")
    prompts = tmp_path / "runs" / "LaMP_2" / "trajectories" / "rl_prompts.jsonl"
    prompts.parent.mkdir(parents=True)
    prompts.write_text("".join(json.dumps(dataclasses.asdict(p)) + "\n" for p in PROMPTS))
    (prompts.parent / "manifest.json").write_text(json.dumps({"data_sha256": "test"}))  # the stage reads no data
    config = {"task": "LaMP_2", "out": str(tmp_path / "runs"), "skip_sft": True, "threads": 1,
              "method_config": {"item_max_words": 8},
              "rl": {"samples_per_prompt": 2, "max_new_tokens": 8, "epochs": 1, "prompts_per_step": 1,
                     "prompts_per_epoch": 1, "max_prompt_tokens": 96, "save_every": 1}}
    (tmp_path / "rl.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([launcher, "launch", "--num_processes", "1", "--cpu", "-m", "personalign.cli", "train", "rpo",
                           "rl", "--config", str(tmp_path / "rl.yaml")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _log(tmp_path / "runs" / "LaMP_2" / "rl")
    assert [r["step"] for r in rows] == [1] and (tmp_path / "runs" / "LaMP_2" / "rl" / "model" / "config.json").is_file()
