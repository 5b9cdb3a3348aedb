"""Backends on the REAL bundled SmolLM2-135M-Instruct GGUF (llama.cpp in-process, transformers, llama.cpp server)."""

from __future__ import annotations


import pytest

from personalign.backends.base import LLM
from personalign.errors import BackendError
from personalign.types import GenParams

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]


@pytest.fixture(scope="module")
def llama() -> LLM:
    from personalign.backends.llamacpp import LlamaCppLLM

    return LlamaCppLLM(n_ctx=2048)


def test_llamacpp_answers_with_real_token_counts(llama):
    out = llama.chat(QUESTION, GenParams(max_tokens=16))
    assert out.text.strip() and out.prompt_tokens > 10 and 0 < out.completion_tokens <= 16
    assert llama.name.startswith("llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf@") and len(llama.name.split("@")[1]) == 12
    text = "The capital of France"
    assert llama.count_tokens(text) == len(llama.llm.tokenize(text.encode(), add_bos=False))


def test_llamacpp_is_deterministic_at_temperature_zero(llama):
    params = GenParams(max_tokens=24, temperature=0.0)
    prompt = [{"role": "user", "content": "Write one sentence about the sea."}]
    other = [{"role": "user", "content": "Write one sentence about the mountains."}]  # shares a prefix
    first = llama.chat(prompt, params).text
    llama.chat(other, params)
    assert llama.chat(prompt, params).text == first == llama.chat(prompt, params).text


def test_llamacpp_honours_stop_strings(llama):
    prompt = [{"role": "user", "content": "List five fruits, one per line."}]
    free = llama.chat(prompt, GenParams(max_tokens=40)).text
    words = free.split()
    assert len(words) >= 3, free
    stop = words[2]
    stopped = llama.chat(prompt, GenParams(max_tokens=40, stop=(stop,)))
    assert stop not in stopped.text and free.startswith(stopped.text)
    assert stopped.text == free[: free.index(stop)]


def test_llamacpp_survives_an_overlong_prompt():
    from personalign.backends.llamacpp import LlamaCppLLM

    small = LlamaCppLLM(n_ctx=512)  # a small window keeps the (contended, 2-core) prompt evaluation quick
    long_text = " ".join(f"word{i % 97}" for i in range(20_000))
    out = small.chat([{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": f"Summarise: {long_text} END"}], GenParams(max_tokens=16))
    assert 300 < out.prompt_tokens <= 512 - 16 and out.completion_tokens > 0


def test_llamacpp_bad_model_files_give_one_line_errors(tmp_path):
    from personalign.backends.llamacpp import LlamaCppLLM

    missing = tmp_path / "absent.gguf"
    with pytest.raises(BackendError, match="absent.gguf"):
        LlamaCppLLM(str(missing))
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(BackendError) as caught:
        LlamaCppLLM(str(corrupt))
    assert str(corrupt) in str(caught.value) and "\n" not in str(caught.value)


def test_transformers_loads_bundled_gguf_and_generates_a_batch():
    from personalign.backends.transformers import TransformersLLM

    llm = TransformersLLM(batch_size=2)
    prompts = [QUESTION, [{"role": "user", "content": "Name a colour of the sky. One word."}]]
    outs = llm.chat_batch(prompts, GenParams(max_tokens=12))
    assert len(outs) == 2 and all(o.text.strip() for o in outs)
    assert all(o.prompt_tokens > 10 and 0 < o.completion_tokens <= 12 for o in outs)
    assert outs[0].prompt_tokens != outs[1].prompt_tokens  # real per-row counts despite padding
    assert llm.name.startswith("transformers:SmolLM2-135M-Instruct.Q4_1.gguf@")
    assert llm.model is not None and llm.tokenizer is not None
    alone = llm.chat(prompts[1], GenParams(max_tokens=12))  # left padding must not change a greedy answer
    assert (alone.text, alone.prompt_tokens) == (outs[1].text, outs[1].prompt_tokens)
    stop = outs[0].text.split()[1]
    stopped = llm.chat(QUESTION, GenParams(max_tokens=12, stop=(stop,)))
    assert stopped.text == outs[0].text[: outs[0].text.index(stop)]


def test_openai_backend_against_real_llama_cpp_server(llama_server):
    from personalign.backends.openai import OpenAICompatibleLLM

    llm = OpenAICompatibleLLM("smollm2", base_url=llama_server, api_key="unused", timeout=60.0)
    outs = llm.chat_batch([QUESTION, QUESTION], GenParams(max_tokens=16))
    assert all(o.text.strip() and o.prompt_tokens > 10 and 0 < o.completion_tokens <= 16 for o in outs)
    assert outs[0].text == outs[1].text
