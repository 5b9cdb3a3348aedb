"""A trained reflection model named by a backend spec (``llamacpp:PATH.gguf``, ``transformers:DIR``) is evaluated
with the prompt settings it was trained with, as when it is named by its path."""

from __future__ import annotations

import pytest

from personalign.config import MethodConfig
from personalign.errors import ConfigError
from personalign.manifest import write_manifest
from personalign.methods.base import trained_prompt
from personalign.methods.rpo import PROMPT_SETTINGS, RPOOptions
from personalign.rpo.config import RPOConfig


@pytest.mark.parametrize("name", ["{stage}/model", "transformers:{stage}/model", "llamacpp:{stage}/model.q8_0.gguf"])
def test_the_stage_manifest_is_found_whatever_names_the_model(tmp_path, name):
    stage = tmp_path / "runs" / "LaMP_3" / "rl"
    write_manifest(stage / "manifest.json", RPOConfig(method_config={"item_max_words": 30}), "abc")
    reflection = name.format(stage=stage)

    def adopted(model: str, config: MethodConfig) -> MethodConfig:
        return trained_prompt("reflection", model, config, RPOOptions(), PROMPT_SETTINGS)[0]

    assert adopted(reflection, MethodConfig()).item_max_words == 30
    with pytest.raises(ConfigError, match="was trained with method_config.item_max_words: 30"):
        adopted(reflection, MethodConfig(item_max_words=40))
    assert adopted("openai:some-model", MethodConfig()) == MethodConfig()  # an API model: nothing to read
