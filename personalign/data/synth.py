"""Synthetic users with known rules (``personalign data synth``): LaMP-format tasks whose signal we control.

Each user may have a latent rule. A record's gold is the rule applied to a rule-blind answer that is computed
from the input alone; the user's history holds their earlier records under the same rule. A ``noise`` share
of each rule user's records breaks the rule (their gold is the rule-blind answer). Shapes, by the LaMP task
whose format, parser and metric they share:

- ``tweet`` (LaMP_7): the neutral rewrite of a tweet, then lowercase / a sign-off / an emoji / "u" for "you";
- ``title`` (LaMP_5): the title an abstract names, then lowercase / "TEAM at SemEval:" / ": A Case Study";
- ``rating`` (LaMP_3): the rating the review's judgement phrase gives, plus a leniency offset, clipped 1..5;
- ``label`` (LaMP_2): the tag the plot phrase gives, with some tags swapped for their synonym.

Files: ``<out>/<task>/{user,time}/<part>_{questions,outputs}.json`` (as ``personalign data build`` writes) and
``<out>/<task>/rules.json``: per user the rule, per record id (questions and history items) the rule-blind
answer and whether the record follows the rule. Only the ``oracle`` reference reads it.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from personalign.data import synth_words as words
from personalign.data.build import build_benchmark
from personalign.data.lamp_io import atomic_writer
from personalign.errors import ConfigError, DataError
from personalign.tasks import get_task

SHAPES = {"tweet": "LaMP_7", "title": "LaMP_5", "rating": "LaMP_3", "label": "LaMP_2"}
RULE_KINDS = {"tweet": ("lowercase", "signoff", "emoji", "u"), "title": ("lowercase", "prefix", "suffix"),
              "rating": ("offset",), "label": ("map",)}
RULES_FILE = "rules.json"
Rule = dict[str, Any]  # {"kind": "none" | one of RULE_KINDS[shape], ...its parameters}


@dataclass(frozen=True)
class SynthConfig:
    """The knobs of one synthetic task."""

    shape: str
    users: int = 40
    history: int = 8  # profile items of a user-split question (time split: test has this many, dev and train fewer)
    share: float = 1.0  # share of users with a rule (0: no personalization signal at all)
    noise: float = 0.0  # share of a rule user's records whose gold breaks the rule
    seed: int = 0
    kinds: tuple[str, ...] = ()  # the rule kinds users draw from (default: every kind of the shape)
    dev_frac: float = 0.2
    test_frac: float = 0.2

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ConfigError(f"unknown synthetic shape {self.shape!r}; choose from: {', '.join(SHAPES)}")
        if type(self.users) is not int or self.users < 4:
            raise ConfigError(f"--users must be an integer >= 4, got {self.users!r}")
        if type(self.history) is not int or self.history < 3:
            raise ConfigError(f"--history must be an integer >= 3 (the time split needs 3 records), got {self.history!r}")
        for name in ("share", "noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"--{name} must be in [0, 1], got {getattr(self, name)!r}")
        unknown = [k for k in self.kinds if k not in RULE_KINDS[self.shape]]
        if unknown:
            raise ConfigError(f"unknown {self.shape} rule {unknown[0]!r}; choose from: {', '.join(RULE_KINDS[self.shape])}")

    @property
    def task(self) -> str:
        return SHAPES[self.shape]


# --- inputs and their rule-blind answers ------------------------------------------------------------------------

def _phrase_map(*slots: list[tuple[str, str]]) -> tuple[re.Pattern, dict[str, str]]:
    table = {source: target for slot in slots for source, target in slot}
    pattern = re.compile("|".join(re.escape(s) for s in sorted(table, key=len, reverse=True)))
    return pattern, table


_TWEET = _phrase_map(words.TWEET_OPENERS, words.TWEET_ACTIVITIES, words.TWEET_TIMES, words.TWEET_COMMENTS)
_PROBLEMS, _TECHNIQUES = dict(words.TITLE_PROBLEMS), dict(words.TITLE_TECHNIQUES)


def _find(table: dict[str, Any], text: str, shape: str) -> Any:
    found = [value for phrase, value in table.items() if phrase in text]
    if len(found) != 1:
        raise DataError("(synthetic input)", None, "input", f"not a {shape} input of this generator: {text[:60]!r}")
    return found[0]


def blind_answer(shape: str, text: str) -> str:
    """The user-independent answer, computed from the input text alone."""
    if shape == "tweet":
        pattern, table = _TWEET
        return pattern.sub(lambda m: table[m.group(0)], text)
    if shape == "title":
        return f"{_find(_TECHNIQUES, text, shape)} for {_find(_PROBLEMS, text, shape)}"
    if shape == "rating":
        levels = {phrase: str(level) for level, phrases in words.RATING_PHRASES.items() for phrase in phrases}
        return _find(levels, text, shape)
    labels = {plot: label for label, plots in words.LABEL_PLOTS.items() for plot in plots}
    return _find(labels, text[:1].lower() + text[1:], shape)


def _pick(rng: random.Random, slot: list[tuple[str, str]]) -> str:
    return rng.choice(slot)[0]


def make_input(shape: str, rng: random.Random) -> str:
    """One input text from the shape's templates."""
    if shape == "tweet":
        opener, activity = _pick(rng, words.TWEET_OPENERS), _pick(rng, words.TWEET_ACTIVITIES)
        return f"{opener} {activity} {_pick(rng, words.TWEET_TIMES)}, {_pick(rng, words.TWEET_COMMENTS)}"
    if shape == "title":
        return (f"We study {_pick(rng, words.TITLE_PROBLEMS)}. We propose {rng.choice(words.TITLE_SYSTEMS)} "
                f"that relies on {_pick(rng, words.TITLE_TECHNIQUES)}. Experiments on "
                f"{rng.choice(words.TITLE_DATASETS)} show that it outperforms strong baselines.")
    if shape == "rating":
        phrase = rng.choice(words.RATING_PHRASES[rng.randint(1, 5)])
        return (f"I bought this {rng.choice(words.RATING_PRODUCTS)} {rng.choice(words.RATING_WHEN)}. "
                f"It is {phrase}. {rng.choice(words.RATING_FILLERS)}")
    plot = rng.choice(words.LABEL_PLOTS[rng.choice(sorted(words.LABEL_PLOTS))])
    return plot[0].upper() + plot[1:] + rng.choice(words.LABEL_SETTINGS)


# --- rules --------------------------------------------------------------------------------------------------------

def draw_rule(shape: str, kinds: tuple[str, ...], rng: random.Random) -> Rule:
    """A random rule of one of ``kinds`` with its parameters."""
    kind = rng.choice(kinds or RULE_KINDS[shape])
    if kind == "signoff":
        return {"kind": kind, "text": rng.choice(words.TWEET_SIGNOFFS)}
    if kind == "emoji":
        return {"kind": kind, "emoji": rng.choice(words.TWEET_EMOJIS)}
    if kind == "prefix":
        return {"kind": kind, "text": f"{rng.choice(words.TITLE_TEAMS)} at SemEval:"}
    if kind == "suffix":
        return {"kind": kind, "text": rng.choice(words.TITLE_SUFFIXES)}
    if kind == "offset":
        return {"kind": kind, "offset": rng.choice([-2, -1, 1, 2])}
    if kind == "map":
        sources = sorted(rng.sample(sorted(words.LABEL_SYNONYMS), 3))
        return {"kind": kind, "map": {s: words.LABEL_SYNONYMS[s] for s in sources}}
    return {"kind": kind}


def apply_rule(rule: Rule, blind: str) -> str:
    """The answer of a user with ``rule`` whose rule-blind answer is ``blind``."""
    kind = rule["kind"]
    if kind == "none":
        return blind
    if kind == "lowercase":
        return blind.lower()
    if kind == "signoff":
        return f"{blind} {rule['text']}"
    if kind == "emoji":
        return f"{blind} {rule['emoji']}"
    if kind == "u":
        return re.sub(r"\b([Yy])ou(r?)\b", lambda m: ("U" if m.group(1) == "Y" else "u") + m.group(2), blind)
    if kind == "prefix":
        return f"{rule['text']} {blind}"
    if kind == "suffix":
        return f"{blind}: {rule['text']}"
    if kind == "offset":
        return str(min(5, max(1, int(blind) + int(rule["offset"]))))
    if kind == "map":
        return rule["map"].get(blind, blind)
    raise DataError(RULES_FILE, None, "kind", f"unknown rule kind {kind!r}")


# --- writing a task -----------------------------------------------------------------------------------------------

def _users(config: SynthConfig, rng: random.Random) -> dict[str, Rule]:
    names = [f"s{index:04d}" for index in range(config.users)]
    with_rule = set(rng.sample(names, round(config.share * config.users)))
    return {name: draw_rule(config.shape, config.kinds, rng) if name in with_rule else {"kind": "none"}
            for name in names}


def generate(config: SynthConfig, out_dir: str | Path) -> dict[str, Any]:
    """Write one synthetic task under ``out_dir``; return its question counts and rule statistics."""
    rng = random.Random(f"personalign-synth:{config.seed}:{config.shape}")
    users = _users(config, rng)
    answers: dict[str, dict[str, Any]] = {}
    start = date(2024, 1, 1)
    with tempfile.TemporaryDirectory(prefix="personalign-synth-") as tmp:
        records_path = Path(tmp) / "records.jsonl"
        with open(records_path, "w", encoding="utf-8") as handle:
            for user, rule in users.items():
                count = config.history + 1
                broken = set(rng.sample(range(count), round(config.noise * count))) if rule["kind"] != "none" else set()
                for index in range(count):
                    text = make_input(config.shape, rng)
                    blind = blind_answer(config.shape, text)
                    follows = index not in broken
                    rid = f"{user}-{index:03d}"
                    answers[rid] = {"blind": blind, "follows": follows}
                    record = {"id": rid, "user_id": user, "input": text,
                              "output": apply_rule(rule, blind) if follows else blind,
                              "timestamp": (start + timedelta(days=index)).isoformat()}
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        counts = build_benchmark(records_path, get_task(config.task), out_dir, seed=config.seed,
                                 dev_frac=config.dev_frac, test_frac=config.test_frac, max_profile=config.history + 2)
    rules = {"shape": config.shape, "task": config.task, "config": asdict(config),
             "users": users, "answers": answers}
    with atomic_writer(Path(out_dir) / config.task / RULES_FILE) as handle:
        json.dump(rules, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    ruled = sum(rule["kind"] != "none" for rule in users.values())
    return {"task": config.task, "shape": config.shape, "users": len(users), "users_with_rule": ruled,
            "questions": counts}


def read_rules(data_dir: str | Path, task_name: str) -> dict[str, Any]:
    """The rules file of a synthetic task (``<data>/<task>/rules.json``); a one-line error when absent."""
    path = Path(data_dir) / task_name / RULES_FILE
    try:
        rules = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(str(path), None, None, "no rules file: only data from `personalign data synth` "
                        "has known rules (the oracle needs them)") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(str(path), None, None, f"cannot read the rules file: {exc}") from None
    if not isinstance(rules, dict) or not isinstance(rules.get("users"), dict) \
            or not isinstance(rules.get("answers"), dict):
        raise DataError(str(path), None, None, "not a synthetic rules file (needs 'users' and 'answers' objects)")
    return rules
