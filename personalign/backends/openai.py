"""Any OpenAI-compatible chat endpoint over HTTP: OpenAI, vLLM, llama.cpp server, Ollama."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity

from personalign.backends import check_number, cut_at_stop
from personalign.backends.base import LLM
from personalign.errors import BackendError, ConfigError
from personalign.types import Completion, GenParams, Messages

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_BACKOFF_S = 60.0


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


class _Failed(Exception):
    """One failed attempt that a retry may cure: no answer, a timeout, 429 or 5xx (``status``: None if no answer)."""

    def __init__(self, problem: str, status: int | None = None, asked: float | None = None, timed_out: bool = False):
        super().__init__(problem)
        self.problem, self.status, self.asked, self.timed_out = problem, status, asked, timed_out


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAICompatibleLLM(LLM):
    """Chat completions through ``POST {base_url}/chat/completions`` with retries and bounded concurrency."""

    def __init__(self, arg: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0, connect_timeout: float = 5.0, max_retries: int = 3, concurrency: int = 8,
                 backoff_base: float = 0.5, max_retry_wait: float = MAX_BACKOFF_S):
        """Options (``--llm-options``): base_url, api_key, timeout (s per reply), connect_timeout,
        max_retries, concurrency (requests in flight), backoff_base (s), max_retry_wait (s: a server whose
        Retry-After asks for longer is not retried; its wait reaches the caller in the BackendError).
        None of them changes a result."""
        for option, value, low, integer in (("timeout", timeout, 0.001, False), ("connect_timeout", connect_timeout, 0.001, False),
                                            ("max_retries", max_retries, 0, True), ("concurrency", concurrency, 1, True),
                                            ("backoff_base", backoff_base, 0, False),
                                            ("max_retry_wait", max_retry_wait, 0, False)):
            check_number("openai", option, value, low, integer)
        self.model = arg or _env("PERSONALIGN_LLM_MODEL")
        if not self.model:
            raise ConfigError("the openai backend needs a model name: use 'openai:MODEL' or set PERSONALIGN_LLM_MODEL")
        base = base_url or _env("PERSONALIGN_LLM_BASE_URL", "OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        key = api_key or _env("PERSONALIGN_LLM_API_KEY", "OPENAI_API_KEY")
        self.max_retries, self.backoff_base = int(max_retries), float(backoff_base)
        self.max_retry_wait = min(float(max_retry_wait), MAX_BACKOFF_S)
        self.parallelism = int(concurrency)
        self.asynchronous = True
        self.openai_fields = frozenset({"tools", "tool_choice", "parallel_tool_calls", "response_format", "logprobs",
                                        "top_logprobs"})
        self.content_types = None  # every content part (images, audio, files) goes to the endpoint as sent
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=self.parallelism, max_keepalive_connections=self.parallelism)
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout),
                                    limits=limits)
        self._pool: ThreadPoolExecutor | None = None
        where = "" if self.base_url == DEFAULT_BASE_URL else f"@{self.base_url}"
        self.name = f"openai:{self.model}{where}"

    def describe(self) -> dict:
        return {**super().describe(), "model": self.model, "base_url": self.base_url}

    def _attempt(self, body: dict[str, Any]) -> dict[str, Any]:
        """One POST: the JSON reply, a BackendError that retrying cannot cure, or ``_Failed``."""
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise _Failed(f"timed out after {self._client.timeout.read}s", timed_out=True) from None
        except httpx.TransportError as exc:
            raise _Failed(f"{type(exc).__name__}: {exc}") from None
        if response.status_code < 400:
            try:
                return response.json()
            except ValueError:
                raise BackendError(f"{self.url}: reply is not JSON: {response.text[:200]!r}") from None
        problem = f"HTTP {response.status_code}: {' '.join(response.text[:200].split())}"
        if response.status_code != 429 and response.status_code < 500:
            raise BackendError(f"{self.url}: {problem}", status=response.status_code)
        raise _Failed(problem, response.status_code, _retry_after(response))

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's Retry-After, else exponential backoff with jitter."""
        asked = state.outcome.exception().asked if state.outcome else None
        if asked is not None:
            return asked
        backoff = tenacity.wait_exponential(multiplier=self.backoff_base, max=MAX_BACKOFF_S)
        return (backoff + tenacity.wait_random(0, self.backoff_base))(state)

    def _asked_too_long(self, state: tenacity.RetryCallState) -> bool:
        asked = state.outcome.exception().asked if state.outcome else None
        return asked is not None and asked > self.max_retry_wait

    def _report(self, state: tenacity.RetryCallState) -> None:
        """One line per retry: the status, timeout or connection error, never the reply's body (a base's error
        body may quote the prompt, and the service's log must not hold prompts: docs/serve.md, "Safety")."""
        failed = state.outcome.exception()
        what = f"HTTP {failed.status}" if failed.status else failed.problem
        print(f"personalign: {self.url}: {what}; retry {state.attempt_number}/{self.max_retries} "
              f"in {state.upcoming_sleep:.1f}s", file=sys.stderr)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST with up to ``max_retries`` retries (tenacity) on connection errors, timeouts, 429 and 5xx; the
        JSON reply. A server that asks to wait longer than ``max_retry_wait`` is not retried."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(tenacity.stop_after_attempt(self.max_retries + 1), self._asked_too_long),
            wait=self._wait, retry=tenacity.retry_if_exception_type(_Failed), before_sleep=self._report,
            sleep=lambda seconds: time.sleep(seconds), reraise=True)
        try:
            return retrying(self._attempt, body)
        except _Failed as failed:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise BackendError(f"{self.url}: {failed.problem} (gave up after {attempts} attempt"
                               f"{'s' if attempts > 1 else ''})", status=failed.status, retry_after=failed.asked,
                               timed_out=failed.timed_out) from None

    def _body(self, messages: Messages, params: GenParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": params.max_tokens,
                                "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed}
        if params.stop:
            body["stop"] = list(params.stop)[:4]  # the OpenAI API accepts at most 4
        if params.json_schema:  # structured outputs
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": json.loads(params.json_schema)}}
        if params.openai:  # the client's own OpenAI fields (tools, response_format, logprobs), as sent
            body.update(json.loads(params.openai))
        return body

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        reply = self._post(self._body(messages, params))
        try:
            choice = reply["choices"][0]
            text, tool_calls = choice["message"].get("content"), choice["message"].get("tool_calls")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"{self.url}: unexpected reply {str(reply)[:200]!r}") from None
        if not isinstance(text, str):  # null content (a refusal, a tool call): an empty answer, never cached
            text = ""
        text = cut_at_stop(text, params.stop)
        usage = reply.get("usage") or {}
        return self._completion(messages, text, usage, choice.get("finish_reason"), tool_calls, choice.get("logprobs"))

    def _completion(self, messages: Messages, text: str, usage: dict[str, Any], finish_reason: str | None,
                    tool_calls: list[dict[str, Any]] | None, logprobs: dict[str, Any] | None) -> Completion:
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:  # the server gave no usage: estimate
            prompt_tokens = sum(self.count_tokens(m.get("content") or "") for m in messages)
        completion_tokens = usage.get("completion_tokens")
        if completion_tokens is None:
            completion_tokens = self.count_tokens(text) if text else 0
        return Completion(text, int(prompt_tokens), int(completion_tokens), finish_reason=finish_reason or "stop",
                          tool_calls=tool_calls or None, logprobs=logprobs)

    def stream(self, messages: Messages, params: GenParams | None = None) -> Iterator[str | Completion]:
        """Stream one answer (``stream: true``, usage asked for): text pieces as they arrive, then the Completion.

        Tool-call pieces are joined into whole calls. One attempt: a reply cannot be retried once it began.
        """
        params = params or GenParams()
        body = {**self._body(messages, params), "stream": True, "stream_options": {"include_usage": True}}
        text, usage, finish, logprobs = "", {}, None, None
        calls: dict[int, dict[str, Any]] = {}
        try:
            with self._client.stream("POST", self.url, json=body) as response:
                if response.status_code >= 400:
                    excerpt = " ".join(response.read().decode("utf-8", "replace")[:200].split())
                    raise BackendError(f"{self.url}: HTTP {response.status_code}: {excerpt}",
                                       status=response.status_code, retry_after=_retry_after(response))
                for line in response.iter_lines():
                    data = line.removeprefix("data:").strip() if line.startswith("data:") else ""
                    if not data or data == "[DONE]":
                        continue
                    chunk = json.loads(data)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        finish = choice.get("finish_reason") or finish
                        if (choice.get("logprobs") or {}).get("content"):
                            logprobs = logprobs or {"content": [], "refusal": None}
                            logprobs["content"] += choice["logprobs"]["content"]
                        for call in delta.get("tool_calls") or []:
                            whole = calls.setdefault(call.get("index", 0), {"id": None, "type": "function",
                                                                            "function": {"name": "", "arguments": ""}})
                            whole["id"] = call.get("id") or whole["id"]
                            for key in ("name", "arguments"):
                                whole["function"][key] += (call.get("function") or {}).get(key) or ""
                        piece = delta.get("content")
                        if piece:
                            text += piece
                            yield piece
        except httpx.TimeoutException:
            raise BackendError(f"{self.url}: timed out after {self._client.timeout.read}s", timed_out=True) from None
        except httpx.TransportError as exc:
            raise BackendError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        except ValueError:
            raise BackendError(f"{self.url}: a stream chunk is not JSON") from None
        yield self._completion(messages, text, usage, finish, [calls[i] for i in sorted(calls)] or None, logprobs)

    def submit_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Future]:
        """Queue the requests on one long-lived pool of ``concurrency`` threads; return at once."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="personalign-http")
        return [self._pool.submit(self.chat, messages, params) for messages in batch]

    def chat_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Completion]:
        """Send up to ``concurrency`` requests at once; results keep the input order."""
        if len(batch) <= 1:
            return [self.chat(messages, params) for messages in batch]
        return [future.result() for future in self.submit_batch(batch, params)]

    def close(self) -> None:
        """Close the HTTP connection pool and the request threads."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        self._client.close()


PLUGIN = OpenAICompatibleLLM
