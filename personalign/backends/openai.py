"""Any OpenAI-compatible chat endpoint over HTTP: OpenAI, vLLM, llama.cpp server, Ollama."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from personalign.backends import check_number, cut_at_stop
from personalign.backends.base import LLM
from personalign.errors import BackendError, ConfigError
from personalign.types import Completion, GenParams, Messages

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_BACKOFF_S = 60.0


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


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
                 backoff_base: float = 0.5):
        """Options (``--llm-options``): base_url, api_key, timeout (s per reply), connect_timeout,
        max_retries, concurrency (requests in flight), backoff_base (s). None of them changes a result."""
        for option, value, low, integer in (("timeout", timeout, 0.001, False), ("connect_timeout", connect_timeout, 0.001, False),
                                            ("max_retries", max_retries, 0, True), ("concurrency", concurrency, 1, True),
                                            ("backoff_base", backoff_base, 0, False)):
            check_number("openai", option, value, low, integer)
        self.model = arg or _env("PERSONALIGN_LLM_MODEL")
        if not self.model:
            raise ConfigError("the openai backend needs a model name: use 'openai:MODEL' or set PERSONALIGN_LLM_MODEL")
        base = base_url or _env("PERSONALIGN_LLM_BASE_URL", "OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        key = api_key or _env("PERSONALIGN_LLM_API_KEY", "OPENAI_API_KEY")
        self.max_retries, self.backoff_base = int(max_retries), float(backoff_base)
        self.parallelism = int(concurrency)
        self.asynchronous = True
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=self.parallelism, max_keepalive_connections=self.parallelism)
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout),
                                    limits=limits)
        self._pool: ThreadPoolExecutor | None = None
        where = "" if self.base_url == DEFAULT_BASE_URL else f"@{self.base_url}"
        self.name = f"openai:{self.model}{where}"

    def describe(self) -> dict:
        return {**super().describe(), "model": self.model, "base_url": self.base_url}

    def _delay(self, attempt: int, asked: float | None) -> float:
        if asked is not None:
            return min(asked, MAX_BACKOFF_S)
        return min(MAX_BACKOFF_S, self.backoff_base * 2 ** attempt) * random.uniform(0.5, 1.5)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on connection errors, timeouts, 429 and 5xx; return the JSON reply."""
        problem = ""
        for attempt in range(self.max_retries + 1):
            asked = None
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                problem = f"timed out after {self._client.timeout.read}s"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise BackendError(f"{self.url}: reply is not JSON: {response.text[:200]!r}") from None
                excerpt = " ".join(response.text[:200].split())
                problem = f"HTTP {response.status_code}: {excerpt}"
                if response.status_code != 429 and response.status_code < 500:
                    raise BackendError(f"{self.url}: {problem}")
                asked = _retry_after(response)
            if attempt < self.max_retries:
                delay = self._delay(attempt, asked)
                print(f"personalign: {self.url}: {problem}; retry {attempt + 1}/{self.max_retries} in {delay:.1f}s",
                      file=sys.stderr)
                time.sleep(delay)
        raise BackendError(f"{self.url}: {problem} (gave up after {self.max_retries + 1} attempts)")

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": params.max_tokens,
                                "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed}
        if params.stop:
            body["stop"] = list(params.stop)[:4]  # the OpenAI API accepts at most 4
        if params.json_schema:  # structured outputs
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": json.loads(params.json_schema)}}
        reply = self._post(body)
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"{self.url}: unexpected reply {str(reply)[:200]!r}") from None
        if not isinstance(text, str):  # null content (a refusal, a tool call): an empty answer, never cached
            text = ""
        text = cut_at_stop(text, params.stop)
        usage = reply.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:  # the server gave no usage: estimate
            prompt_tokens = sum(self.count_tokens(m.get("content") or "") for m in messages)
        completion_tokens = usage.get("completion_tokens")
        if completion_tokens is None:
            completion_tokens = self.count_tokens(text) if text else 0
        return Completion(text, int(prompt_tokens), int(completion_tokens))

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
