"""RL settings that would train something other than asked (log-probs / 0, an ascent, 0 read as "every prompt")
are refused by name when the config is read."""

from __future__ import annotations

import pytest

from personalign.errors import ConfigError
from personalign.rpo.config import load_config


@pytest.mark.parametrize("setting", ["temperature: 0", "top_p: 1.5", "learning_rate: -1.0e-5", "beta: -0.1",
                                     "clip_eps: 0", "prompts_per_epoch: 0", "max_prompt_tokens: 0"])
def test_a_bad_rl_value_is_refused_naming_its_key(tmp_path, setting):
    path = tmp_path / "rpo.yaml"
    path.write_text(f"rl: {{{setting}}}\n")
    with pytest.raises(ConfigError, match=rf"rpo.yaml: rl\.{setting.split(':')[0]}: "):
        load_config(path)
    assert load_config(None).rl.prompts_per_epoch == 16  # the defaults still load
