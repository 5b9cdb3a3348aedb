"""A trained POPI summarizer is evaluated with the prompt settings it was trained with (its stage's manifest.json),
as RPO's reflection model is; ``summary_items`` has one name, ``method_config.summary_items``."""

from __future__ import annotations

import pytest
from fakes import FakeEchoLLM

from personalign.config import MethodConfig
from personalign.errors import ConfigError
from personalign.manifest import write_manifest
from personalign.methods import build_method
from personalign.methods.base import trained_prompt
from personalign.methods.popi import PROMPT_SETTINGS, POPIOptions
from personalign.popi.train import POPIConfig
from personalign.tasks import get_task
from personalign.types import Example

PROFILE = [{"id": str(i), "text": f"review {i} of a guitar tuner", "score": str(1 + i % 2)} for i in range(6)]
TRAINED = {"summary_budget": 32, "method_config": {"summary_items": 3, "item_max_words": 8}}


@pytest.fixture
def stage(tmp_path):
    """A ``personalign train popi rl`` stage folder whose manifest records the training config."""
    folder = tmp_path / "runs" / "LaMP_3" / "rl"
    write_manifest(folder / "manifest.json", POPIConfig(task="LaMP_3", **TRAINED), "abc",
                   {"stage": "popi-rl", "status": "done"})
    return folder


def adopt(summarizer: str, config: MethodConfig, **options) -> tuple[MethodConfig, POPIOptions]:
    return trained_prompt("summarizer", summarizer, config, POPIOptions(**options), PROMPT_SETTINGS)


@pytest.mark.parametrize("name", ["{stage}/model", "transformers:{stage}/model", "llamacpp:{stage}/model.q8_0.gguf"])
def test_settings_left_at_their_default_take_the_trained_values(stage, name, capsys):
    config, options = adopt(name.format(stage=stage), MethodConfig(k=2))
    assert (config.summary_items, config.item_max_words, options.summary_budget) == (3, 8, 32)
    assert config.k == 2  # not a prompt setting of the summarizer: as given
    err = capsys.readouterr().err
    assert "method_config.summary_items 3, as summarizer" in err and "method_options.summary_budget 32, as" in err
    assert str(stage / "manifest.json") in err


def test_the_same_values_set_explicitly_are_accepted_silently(stage, capsys):
    config, options = adopt(str(stage / "model"), MethodConfig(summary_items=3, item_max_words=8), summary_budget=32)
    assert (config.summary_items, config.item_max_words, options.summary_budget) == (3, 8, 32)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("setting, config, options, trained, given", [
    ("method_config.summary_items", {"summary_items": 5}, {}, 3, 5),
    ("method_config.item_max_words", {"item_max_words": 40}, {}, 8, 40),
    ("method_options.summary_budget", {}, {"summary_budget": 48}, 32, 48),
])
def test_a_different_explicit_value_is_refused_in_one_line_naming_setting_and_manifest(stage, setting, config, options,
                                                                                       trained, given):
    summarizer = str(stage / "model.q8_0.gguf")
    with pytest.raises(ConfigError) as refused:  # refused before any model is loaded (the file does not exist)
        build_method("popi", get_task("LaMP_3"), llm=FakeEchoLLM(), config=MethodConfig(**config),
                     summarizer=summarizer, **options)
    message = str(refused.value)
    assert "\n" not in message
    assert f"summarizer {summarizer} was trained with {setting}: {trained} ({stage / 'manifest.json'})" in message
    assert f"this run sets {given}" in message


def test_summarizers_without_a_training_manifest_keep_what_is_given(tmp_path):
    given = MethodConfig(summary_items=5)
    for summarizer in ("openai:some-model", str(tmp_path / "other.gguf"), str(tmp_path / "folder")):
        config, options = adopt(summarizer, given, summary_budget=20)
        assert (config, options.summary_budget) == (given, 20)
    (tmp_path / "manifest.json").write_text("not json", encoding="utf-8")  # unreadable: as given
    assert adopt(str(tmp_path / "model"), given)[0] == given


def test_the_old_summary_items_option_is_refused_with_its_new_name():
    with pytest.raises(ConfigError, match=r"^method popi: summary_items: renamed; use method_config.summary_items$"):
        build_method("popi", get_task("LaMP_3"), llm=FakeEchoLLM(), summary_items=3)


def test_the_method_summarizes_method_config_summary_items_items(tmp_path):
    generator, summarizer = FakeEchoLLM(), FakeEchoLLM()
    method = build_method("popi", get_task("LaMP_3"), llm=generator, config=MethodConfig(summary_items=2),
                          summarizer_llm=summarizer, cache_dir=tmp_path)
    assert method.derived_items == 2
    method.answer(Example("q", get_task("LaMP_3").format_input("Fine."), PROFILE), PROFILE)
    assert summarizer.prompts[0].count("\n- ") == 2  # the two newest history items
