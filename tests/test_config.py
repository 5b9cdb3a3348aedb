"""The one typed config system: unknown keys and bad values refused by name, one level of inheritance,
command line over file over defaults, method options checked before anything is built, one name for k."""

from __future__ import annotations

import pytest

from personalign.cli import build_parser, main
from personalign.cli.eval import eval_settings
from personalign.config import load_settings, precedence, read_yaml
from personalign.errors import ConfigError
from personalign.methods import build_method
from personalign.methods.base import MethodConfig
from personalign.serve.config import ServeConfig, load_serve_config
from personalign.tasks import get_task

from tests.fakes import FakeEchoLLM


def write(path, text: str):
    path.write_text(text)
    return path


def eval_args(*argv: str):
    return build_parser().parse_args(["eval", "--data", "d", "--task", "LaMP_3", *argv])


def test_an_unknown_nested_key_is_refused_by_file_and_key_path(tmp_path):
    path = write(tmp_path / "serve.yaml", "method_config:\n  k: 2\n  item_max_wrods: 30\n")
    with pytest.raises(ConfigError) as caught:
        load_serve_config(path)
    line = str(caught.value)
    assert line.startswith(f"{path}: method_config.item_max_wrods: unknown option; known: k, item_max_words, ")
    assert "\n" not in line


def test_an_unknown_eval_key_is_one_line_on_the_command_line(tmp_path, capsys):
    path = write(tmp_path / "eval.yaml", "method_config: {k: 2}\nconcurrncy: 4\n")
    assert main(["eval", "--data", str(tmp_path), "--task", "LaMP_3", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"personalign: error: {path}: concurrncy: unknown option; known: retriever, llm, ")
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("text, where", [
    ("method_config: {k: four}\n", "method_config.k: Input should be a valid integer, got 'four'"),
    ("method_config: {top_p: 0}\n", "method_config.top_p: Input should be greater than 0, got 0"),
    ("port: 70000\n", "port: Input should be less than or equal to 65535, got 70000"),
    ("method_config: [1, 2]\n", "method_config: Input should be a valid dictionary or instance of MethodConfig"),
])
def test_a_wrong_type_or_range_is_refused_by_file_and_key_path(tmp_path, text, where):
    path = write(tmp_path / "serve.yaml", text)
    with pytest.raises(ConfigError, match="^" + str(path) + ": ") as caught:
        load_serve_config(path)
    assert where in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_value_given_directly_in_python_is_a_config_error_too():
    with pytest.raises(ConfigError, match="^MethodConfig: k: Input should be greater than or equal to 1, got 0$"):
        MethodConfig(k=0)
    with pytest.raises(ConfigError, match="ServeConfig: method_config.k: Input should be a valid integer"):
        ServeConfig(method_config={"k": "4"})


def test_one_level_of_inheritance_is_merged_and_two_levels_are_refused(tmp_path):
    write(tmp_path / "base.yaml", "method_config: {k: 2, item_max_words: 9}\nport: 8001\n")
    child = write(tmp_path / "child.yaml", "inherit: base.yaml\nmethod_config: {k: 3}\n")
    config = load_serve_config(child)
    assert (config.method_config.k, config.method_config.item_max_words, config.port) == (3, 9, 8001)
    grandchild = write(tmp_path / "grandchild.yaml", "inherit: child.yaml\nport: 8002\n")
    with pytest.raises(ConfigError, match=f"^{grandchild}: inherit: child.yaml itself inherits base.yaml; "
                                          "one level of inheritance only"):
        read_yaml(grandchild)
    looped = write(tmp_path / "self.yaml", "inherit: self.yaml\n")
    with pytest.raises(ConfigError, match="inherits itself"):
        read_yaml(looped)


def test_precedence_is_command_line_over_file_over_defaults_for_eval(tmp_path):
    path = write(tmp_path / "eval.yaml", "method_config: {k: 2, item_max_words: 9}\nlimit: 5\nseed: 3\n"
                                         "method_options:\n  rpo@sft: {reflection: a.gguf, num_demos: 1}\n")
    from_file = eval_settings(eval_args("--config", str(path)))
    assert (from_file.method_config.k, from_file.limit, from_file.seed) == (2, 5, 3)  # the file over the defaults
    assert from_file.method_config.item_max_words == 9 and from_file.method_config.seed == 3
    assert from_file.concurrency == 8 and from_file.llm == "llamacpp"  # not in the file: the defaults
    flags = eval_settings(eval_args("--config", str(path), "--k", "7", "--seed", "1", "--methods", "rpo@sft",
                                    "--reflection", "b.gguf", "--llm", "openai:m"))
    assert (flags.method_config.k, flags.seed, flags.method_config.seed, flags.llm) == (7, 1, 1, "openai:m")
    assert flags.method_config.item_max_words == 9 and flags.limit == 5  # the rest of the file stays
    assert flags.method_options == {"rpo@sft": {"reflection": "b.gguf", "num_demos": 1}}
    bare = eval_settings(eval_args())
    assert (bare.method_config.k, bare.limit, bare.seed, bare.retriever) == (4, None, 0, "bm25")


def test_the_precedence_rule_merges_sections_and_skips_flags_not_given():
    assert precedence({"a": 1, "s": {"x": 1, "y": 2}}, {"a": None, "s": {"x": 5, "y": None}, "b": 2}) == \
        {"a": 1, "s": {"x": 5, "y": 2}, "b": 2}


def test_a_bad_flag_is_named_by_the_flag(tmp_path, capsys):
    path = write(tmp_path / "eval.yaml", "limit: 5\n")
    assert main(["eval", "--data", str(tmp_path), "--task", "LaMP_3", "--config", str(path), "--limit", "0"]) == 2
    assert capsys.readouterr().err.strip() == \
        "personalign: error: --limit: Input should be greater than or equal to 1, got 0"


def test_a_method_option_typo_is_refused_by_name_before_anything_is_built(tmp_path):
    with pytest.raises(ConfigError) as caught:  # the reflection model does not exist: the typo is found first
        build_method("rpo@sft", get_task("LaMP_3"), llm=FakeEchoLLM(), reflection=str(tmp_path / "none.gguf"),
                     reflection_max_tokns=64)
    assert str(caught.value).startswith("method rpo@sft: reflection_max_tokns: unknown option; known: reflection, ")
    with pytest.raises(ConfigError, match="^method popi: summary_budget: Input should be greater than or equal to 1"):
        build_method("popi", get_task("LaMP_3"), llm=FakeEchoLLM(), summary_budget=0)
    with pytest.raises(ConfigError, match="^method zero-shot: k: unknown option; known: none$"):
        build_method("zero-shot", get_task("LaMP_3"), llm=FakeEchoLLM(), k=3)


def test_method_options_in_eval_and_serve_files_are_checked_with_their_path(tmp_path, capsys):
    path = write(tmp_path / "eval.yaml", "method_options:\n  rpo@rl: {reflection: x.gguf, num_demo: 1}\n")
    assert main(["eval", "--data", str(tmp_path), "--task", "LaMP_3", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"personalign: error: {path}: method_options.rpo@rl.num_demo: unknown option; known: ")
    serve = write(tmp_path / "serve.yaml", "method: rpm\nmethod_options: {max_item: 4}\n")
    with pytest.raises(ConfigError, match=f"^{serve}: method_options.max_item: unknown option; known: max_items, "):
        load_serve_config(serve)


def test_the_service_embeds_the_method_config_and_the_old_k_key_names_the_new_one(tmp_path):
    assert ServeConfig.model_fields["method_config"].annotation is MethodConfig
    assert load_serve_config(None, {"method_config": {"k": 6}}).method_config == MethodConfig(k=6)
    path = write(tmp_path / "serve.yaml", "k: 4\n")
    with pytest.raises(ConfigError, match=f"^{path}: k: renamed; use method_config.k$"):
        load_serve_config(path)
    old_eval = write(tmp_path / "eval.yaml", "method: {k: 2}\n")
    with pytest.raises(ConfigError, match=f"^{old_eval}: method: renamed; use method_config$"):
        load_settings(type(eval_settings(eval_args())), old_eval)


# ---------------------------------------------------------------- training configs

def test_an_unknown_or_mistyped_training_key_is_refused_by_file_and_key_path(tmp_path):
    from personalign.popi.train import load_popi_config
    from personalign.rpo.config import load_config

    path = write(tmp_path / "rpo.yaml", "rl:\n  sampels_per_prompt: 8\n")
    with pytest.raises(ConfigError, match=f"^{path}: rl.sampels_per_prompt: unknown option; known: samples_per_prompt, "):
        load_config(path)
    write(path, "sft:\n  learning_rate: 5e-6\n")  # YAML 1.1 reads 5e-6 as a string: refused, not silently kept
    with pytest.raises(ConfigError, match=f"^{path}: sft.learning_rate: Input should be a valid number, got '5e-6'$"):
        load_config(path)
    popi = write(tmp_path / "popi.yaml", "generator_sft: {max_lenght: 512}\n")
    with pytest.raises(ConfigError, match=f"^{popi}: generator_sft.max_lenght: unknown option; known: model, "):
        load_popi_config(popi)


@pytest.mark.parametrize("text, message", [
    ("sft: {shots: 1}\n", "sft.shots: renamed; use trajectories.k"),
    ("rl: {k_min: 2}\n", "rl.k_min: renamed; use rl.k_from"),
    ("rl: {k_max: 6}\n", "rl.k_max: renamed; use rl.k_to"),
    ("rl: {fixed_k: 4}\n", "rl.fixed_k: renamed; use rl.k_from = rl.k_to (a fixed k)"),
    ("trajectories: {item_max_words: 30}\n", "trajectories.item_max_words: renamed; use method_config.item_max_words"),
])
def test_the_old_names_of_k_are_refused_with_the_new_name(tmp_path, text, message):
    from personalign.rpo.config import load_config

    path = write(tmp_path / "rpo.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {message}"


def test_training_command_line_values_win_over_the_file(tmp_path):
    from personalign.popi.train import load_popi_config
    from personalign.rpo.config import load_config

    path = write(tmp_path / "rpo.yaml", "task: LaMP_5\nout: runs/x\nthreads: 2\nrl: {k_from: 3, k_to: 3}\n")
    config = load_config(path, {"task": "LaMP_7", "out": None, "threads": None})
    assert (config.task, config.out, config.threads, config.rl.k_from, config.split) == ("LaMP_7", "runs/x", 2, 3, "user")
    popi = write(tmp_path / "popi.yaml", "rl: {threads: 1, epochs: 2}\ngenerator: 'llamacpp:{task}.gguf'\n")
    config = load_popi_config(popi, {"task": "LaMP_3", "rl": {"threads": 4}})
    assert (config.rl.threads, config.rl.epochs, config.generator) == (4, 2, "llamacpp:LaMP_3.gguf")
    assert config.generator_sft.max_length == 1024  # the generator's own SFT default, also under a partial section


def test_rpo_is_evaluated_with_the_prompt_settings_it_was_trained_with(tmp_path, capsys):
    """The training config's method_config reaches the stage manifest, and the rpo method reads it back: a default
    takes the trained value, a different explicit value is refused."""
    from personalign.manifest import write_manifest
    from personalign.rpo.config import RPOConfig

    stage = tmp_path / "runs" / "LaMP_3" / "rl"
    manifest = write_manifest(stage / "manifest.json", RPOConfig(method_config={"item_max_words": 30}), "abc")
    assert manifest["config"]["method_config"]["item_max_words"] == 30 and manifest["config"]["rl"]["k_to"] == 6
    model = str(stage / "model")
    with pytest.raises(ConfigError, match=r"was trained with method_config.item_max_words: 30 .* this run sets 40"):
        build_method("rpo", get_task("LaMP_3"), llm=FakeEchoLLM(), config=MethodConfig(item_max_words=40),
                     reflection=model)
    from personalign.methods.base import trained_prompt
    from personalign.methods.rpo import PROMPT_SETTINGS, RPOOptions

    # not set: the trained value is taken, and said
    adopted, _ = trained_prompt("reflection", model, MethodConfig(k=3), RPOOptions(), PROMPT_SETTINGS)
    assert (adopted.k, adopted.item_max_words) == (3, 30)
    assert "method_config.item_max_words 30, as" in capsys.readouterr().err
    other = str(tmp_path / "other.gguf")  # no manifest: as given
    assert trained_prompt("reflection", other, MethodConfig(), RPOOptions(), PROMPT_SETTINGS)[0] == MethodConfig()


def test_one_file_giving_two_seeds_is_refused_and_the_seed_flag_still_wins(tmp_path):
    two = write(tmp_path / "two.yaml", "seed: 3\nmethod_config: {seed: 5}\n")
    with pytest.raises(ConfigError, match=r"two.yaml: seed: 3 but method_config.seed: 5"):
        eval_settings(eval_args("--config", str(two)))
    inner = write(tmp_path / "inner.yaml", "method_config: {seed: 5}\n")
    assert eval_settings(eval_args("--config", str(inner))).seed == 5
    flagged = eval_settings(eval_args("--config", str(inner), "--seed", "1"))
    assert (flagged.seed, flagged.method_config.seed) == (1, 1)
