"""A client that leaves in the middle of a stream frees the model at once (issue 27 review).

An in-process model (llama.cpp) is used by one request at a time: the streaming answer holds the model's lock
while its generator waits for the client to read. Before the fix, a client that disconnected left that
generator suspended until Python's cyclic garbage collector happened to find it, and every later request
waited for the model meanwhile (a minute and more in the outside probe).
"""

from __future__ import annotations

import gc
import time

import httpx
from fakes import FakeEchoLLM
from serve_helpers import running

from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig
from personalign.serve.store import Store


class FakeSlowStreamLLM(FakeEchoLLM):
    """FAKE in-process model (not asynchronous, so the service serializes it) that streams its echo a word at a
    time, 20 ms apart; ``stopped`` counts the streams that ended before their last word."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped = 0

    def stream(self, messages, params=None):  # type: ignore[no-untyped-def]
        completion = self.chat(messages, params)
        finished = False
        try:
            for word in (completion.text + " word" * 200).split(" "):
                time.sleep(0.02)
                yield word + " "
            finished = True
            yield completion
        finally:
            self.stopped += not finished


def test_a_client_that_leaves_mid_stream_frees_the_model_for_the_next_request(tmp_path):
    config = ServeConfig(data_dir=str(tmp_path))
    store, llm = Store(config.store()), FakeSlowStreamLLM()
    key = store.add_tenant("acme")
    auth = {"Authorization": f"Bearer {key}"}
    gc.disable()  # the leak was freed only by the cyclic collector: without it, it stays
    try:
        with running(create_app(config, base_llm=llm, store=store)) as url:
            for user in (None, "alice"):  # the pass-through and the personalized path
                body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "tell me"}],
                        **({"user": user} if user else {})}
                with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=auth) as reply:
                    lines = reply.iter_lines()
                    assert reply.status_code == 200 and "chat.completion.chunk" in next(lines)
                    next(lines)  # the answer has begun
                start = time.monotonic()  # the client has gone; the next request gets the model
                answer = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=30, json={
                    "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
                assert answer.status_code == 200 and time.monotonic() - start < 10
        assert llm.stopped == 2  # both abandoned streams were stopped, not run to their end
    finally:
        gc.enable()
        store.engine.dispose()
