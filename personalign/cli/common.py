"""Helpers shared by the command modules: the parser, comma lists, the model flags (values are layered and
checked by :mod:`personalign.config`)."""

from __future__ import annotations

import argparse

from personalign import registry
from personalign.store import CACHE_DIR_ENV, default_cache_dir


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default, unless it has none (None, False) or its help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == "" or "(default" in text:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """The argument parser of every command and subcommand (subparsers inherit the class): defaults in ``--help``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


SPLIT_HELP = ("user (LaMP's user-based split: dev and test users are not among the train users) or time "
              "(the time-based split: the same users, their latest records held out as questions)")


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    """``--cache-dir``: the user's cache folder unless ``$PERSONALIGN_CACHE_DIR`` or the flag says otherwise."""
    parser.add_argument("--cache-dir", default=default_cache_dir(),
                        help=f"LLM, embedding and trained-scorer caches (${CACHE_DIR_ENV} sets the default)")


def csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]

def add_model_options(parser: argparse.ArgumentParser) -> None:
    from personalign.backends import backend_options

    backends = "; ".join(f"{name}: {backend_options(name)}" for name in registry.available("backends"))
    parser.add_argument("--llm", help="backend spec: llamacpp[:GGUF], openai:MODEL, transformers:PATH (default llamacpp)")
    parser.add_argument("--llm-options", help=f"backend options as key=value,... ({backends})")
    parser.add_argument("--retriever", help="bm25 (default), dense[:MODEL_OR_PATH], random or recency")
    parser.add_argument("--k", type=int, help="history items per prompt (default 4)")
    parser.add_argument("--seed", type=int, help="seed for sampling, --limit and controls (default 0)")
    add_cache_dir(parser)
    parser.add_argument("--reflection", help="RPO reflection model: trained folder, .gguf, backend spec, or 'bundled'")
