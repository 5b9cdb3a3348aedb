"""Core value types shared by every method, task and backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ProfileItem = dict[str, Any]
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    """One LaMP question: the task input plus the user's history (profile)."""

    id: str
    input: str
    profile: list[ProfileItem] = field(default_factory=list)
    user_id: str | None = None
    date: str | None = None
    derived: dict[str, str] = field(default_factory=dict)  # stored per-user artefacts, e.g. a "profile_summary"


@dataclass
class Trace:
    """What a method did to produce an answer: retrieval, prompts, raw outputs, token counts."""

    retrieved_ids: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    prompts: list[Messages] = field(default_factory=list)
    raw_outputs: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_calls: int = 0
    stage_prompt_tokens: dict[str, int] = field(default_factory=dict)  # prompt tokens per stage (context cost)
    extra: dict[str, Any] = field(default_factory=dict)

    def record_call(self, messages: Messages, completion: "Completion", stage: str = "answer") -> None:
        """Append one LLM call (stage, prompt, raw output, token counts) to the trace."""
        self.stages.append(stage)
        self.prompts.append(messages)
        self.raw_outputs.append(completion.text)
        self.prompt_tokens += completion.prompt_tokens
        self.stage_prompt_tokens[stage] = self.stage_prompt_tokens.get(stage, 0) + completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cached_calls += int(completion.cached)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """A method's raw answer with its trace; ``output_filter`` names how score time parses it.

    Parsing is a filter applied after generation (``personalign.tasks.filters``), so a parser fix
    rescores a run without calling an LLM again.
    """

    raw: str
    trace: Trace = field(default_factory=Trace)
    output_filter: str = "plain"


@dataclass(frozen=True)
class Request:
    """One LLM call a method asks for: which backend (``llm``), the messages and sampling parameters."""

    messages: Messages
    params: "GenParams"
    stage: str = "answer"
    llm: str = "base"


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters for one LLM call."""

    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    json_schema: str | None = None  # constrain the output to this JSON schema where the backend can
    # more OpenAI request fields for this call, as sorted JSON (``tools``, ``tool_choice``, ``response_format``,
    # ``logprobs``, ``top_logprobs``): only the backends whose ``LLM.openai_fields`` name them get them
    openai: str | None = None


@dataclass
class Completion:
    """The text an LLM returned, with token counts for the call."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    finish_reason: str = "stop"             # "length" when it hit max_tokens, "tool_calls" for tool calls
    tool_calls: list[dict[str, Any]] | None = None  # the OpenAI tool calls the model answered with, if any
    logprobs: dict[str, Any] | None = None  # the OpenAI choice ``logprobs`` object, when asked for
