"""The team path (``backend: openai``) against a real llama.cpp llama-server on 127.0.0.1 serving the shipped
Qwen2.5-Coder-0.5B GGUF: FIM, chat, streaming, cancellation, restarts, refusals, deadlines, a server down at start,
and the API key's hygiene."""

import asyncio
import logging
import time

import pytest

from engram_ls.inference import Inference, InferenceError, Snippet
from engram_ls.inference.backends import OpenAIBackend

from tests.inference.conftest import wait_until

from .conftest import KEY, KEY_ENV, FaultyProxy, LlamaServer, free_port, team_settings

pytestmark = pytest.mark.model

FIB_PREFIX = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "
FIB_SUFFIX = "\n\n\nprint(fibonacci(10))\n"
PRICING = Snippet("shop/pricing.py", 1, 3, "def apply_discount(amount, rate):\n    return amount * (1 - rate)\n")
STORY = "Write a long story about a compiler that learns to dream. Use at least five paragraphs."


def slot_with(server: LlamaServer, marker: str) -> dict:
    """The slot whose current or last prompt contains ``marker``."""
    found = [s for s in server.slots() if marker in (s.get("prompt") or "")]
    assert found, f"no slot saw a prompt with {marker!r}"
    return found[0]


async def started(settings) -> Inference:
    inf = Inference(settings)
    await inf.start()
    return inf


async def test_fim_goes_to_v1_completions_with_fim_tokens_and_cross_file_context(llama_server, team_key):
    inf = await started(team_settings(llama_server.url))
    try:
        toks = []
        a = await inf.complete("from shop.pricing import apply_discount\n\ndef checkout(total):\n    return ",
                               "\n", [PRICING], max_tokens=12, path="shop/cart.py", on_token=toks.append)
        assert "apply_discount(" in a.text and a.cited == [PRICING]
        assert a.text == "".join(toks) and a.role == "coding"
        prompt = slot_with(llama_server, "def checkout(total)")["prompt"]
        # the server saw the repo-level FIM prompt: special tokens, the snippet's file section, the current file
        assert "<|repo_name|>" in prompt and "<|file_sep|>shop/pricing.py:1-3\ndef apply_discount" in prompt
        assert "<|file_sep|>shop/cart.py\n<|fim_prefix|>from shop.pricing" in prompt and "<|fim_middle|>" in prompt
        fib = await inf.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=16)
        assert "fibonacci(n - 1)" in fib.text and "fibonacci(n - 2)" in fib.text
    finally:
        await inf.close()


async def test_chat_streams_token_by_token(llama_server, team_key):
    inf = await started(team_settings(llama_server.url))
    try:
        toks, busy_at_first_token = [], []

        def on_token(piece: str) -> None:
            if not toks:  # streamed, not buffered: the server is still generating when the first piece arrives
                busy_at_first_token.append(not llama_server.idle())
            toks.append(piece)

        ctx = [Snippet("net/http.py", 4, 8, "def fetch_url(url, timeout=5):\n    \"\"\"Download a web page.\"\"\"\n")]
        a = await inf.ask("What does fetch_url do?", ctx, role="research", max_tokens=48, on_token=on_token)
        assert a.text.strip() and a.text == "".join(toks) and len(toks) > 3
        assert busy_at_first_token == [True]
        assert a.cited == ctx and a.usage["completion_tokens"] == len(toks)
        assert "fetch_url" in slot_with(llama_server, "What does fetch_url do?")["prompt"]
    finally:
        await inf.close()


async def test_closing_the_stream_stops_generation_on_the_server(llama_server, team_key):
    inf = await started(team_settings(llama_server.url))
    try:
        await wait_until(llama_server.idle, timeout=120, what="an idle server")
        before = llama_server.tokens_predicted()
        toks = []
        task = asyncio.create_task(inf.ask(STORY, role="coding", max_tokens=400, request_id="story",
                                           on_token=toks.append))
        await wait_until(lambda: len(toks) >= 4, timeout=120, what="tokens")
        await inf.cancel("story")
        a = await task
        assert a.cancelled and a.usage["completion_tokens"] < 400
        await wait_until(llama_server.idle, timeout=60, what="the server to go idle")
        generated = llama_server.tokens_predicted() - before
        # tokens the server generated beyond those the client had read when it closed the stream
        assert generated - a.usage["completion_tokens"] <= 2, (generated, a.usage)
    finally:
        await inf.close()


TODO_PREFIX = "# A command-line todo list: add, list, done and remove, kept in a JSON file.\nimport argparse\nimport json\n\n"
TODO_SUFFIX = "\n\n\nif __name__ == \"__main__\":\n    main()\n"


async def test_restart_mid_request_every_request_is_answered(team_key, capfd):
    server = LlamaServer(parallel=2).start()
    inf = await started(team_settings(server.url))
    try:
        fim_toks, chat_toks = [], []
        fim = asyncio.create_task(inf.complete(TODO_PREFIX, TODO_SUFFIX, max_tokens=64, on_token=fim_toks.append))
        chat = asyncio.create_task(inf.ask(STORY, role="research", max_tokens=64, on_token=chat_toks.append))
        await wait_until(lambda: fim_toks and chat_toks, timeout=120, what="both streams to start")
        await asyncio.to_thread(server.restart)  # kill -9, then start again on the same port
        before = len(fim_toks), len(chat_toks)
        a, b = await fim, await chat
        for answer, toks, n in ((a, fim_toks, before[0]), (b, chat_toks, before[1])):
            assert answer.text.strip() and answer.text == "".join(toks) and answer.finish in ("stop", "length")
            assert len(toks) > n  # the stream went on after the restart
        assert "retrying" in capfd.readouterr().err  # the workers rode the restart out instead of failing
    finally:
        await inf.close()
        server.stop()


async def test_a_second_outage_before_the_retried_request_answers_is_ridden_out(llama_server, team_key, capfd):
    # Two restarts in a row (the bench's restart phase, 8 editors): the retry of the first has connected but not
    # produced a token yet when the second comes, more than the retry window after the first. Only time without a
    # connection counts as an outage, so the request is retried again and answered.
    proxy = FaultyProxy(llama_server.port)
    inf = await started(team_settings(proxy.url))
    try:
        toks = []
        task = asyncio.create_task(inf.complete(TODO_PREFIX, TODO_SUFFIX, max_tokens=64, on_token=toks.append))
        await wait_until(lambda: toks, timeout=120, what="the stream to start")
        proxy.hold = True  # from now on the "server" accepts and says nothing
        proxy.drop()
        dropped = time.monotonic()
        await wait_until(lambda: proxy.held, timeout=30, what="the retry to connect")
        # the fault itself: silence for longer than the retry window, then the second crash
        await wait_until(lambda: time.monotonic() - dropped > OpenAIBackend.RETRY_S + 1, timeout=60,
                         what="the retry window to pass")
        proxy.hold = False
        proxy.drop()
        a = await task
        assert a.text.strip() and a.text == "".join(toks) and a.finish in ("stop", "length"), a
        assert capfd.readouterr().err.count("retrying") >= 2
    finally:
        await inf.close()
        proxy.close()


async def test_wrong_api_key_is_a_clear_401(llama_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not-the-key-9d8e")
    inf = await started(team_settings(llama_server.url))
    try:
        with pytest.raises(InferenceError) as err:
            await inf.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=4)
        message = str(err.value)
        assert "401" in message and "API key" in message and f"${KEY_ENV}" in message, message
        assert "not-the-key-9d8e" not in message
        monkeypatch.delenv(KEY_ENV)
        await inf.close()
        inf = await started(team_settings(llama_server.url))
        with pytest.raises(InferenceError, match=f"401.*no key \\(\\${KEY_ENV} is not set\\)"):
            await inf.ask("hello", role="research", max_tokens=4)
    finally:
        await inf.close()


async def test_server_slower_than_the_deadline(llama_server, team_key):
    # a ~3,000-token prompt takes the server seconds to read on 2 cores: far past a 1 s deadline
    big = [Snippet(f"big/module_{i}.py", 1, 60, "\n".join(f"def helper_{i}_{j}(x):\n    return x * {j} + {i}"
                                                              for j in range(30))) for i in range(6)]
    inf = await started(team_settings(llama_server.url, request_timeout_s=1.0))
    try:
        await wait_until(llama_server.idle, timeout=120, what="an idle server")
        before = llama_server.tokens_predicted()
        a = await inf.ask("Summarise every helper in these modules.", big, role="research", max_tokens=64)
        assert a.finish == "deadline" and a.usage["completion_tokens"] == 0
        # the server dropped the abandoned request instead of generating for nobody
        # seen with this build: llama-server notices the closed connection only once it has read the whole prompt
        # (about 200 s under load here), then releases the slot before generating
        await wait_until(llama_server.idle, timeout=300, what="the server to drop the abandoned prompt")
        assert slot_with(llama_server, "Summarise every helper")  # it did receive the prompt
        assert llama_server.tokens_predicted() - before <= 2
    finally:
        await inf.close()


async def test_server_down_at_start_is_retried_until_it_comes_up(team_key, capfd):
    server = LlamaServer(port=free_port())
    inf = await started(team_settings(server.url))  # nothing listens yet: engram-ls starts anyway
    try:
        assert inf.status()["coding"]["alive"] == 1
        task = asyncio.create_task(inf.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=16))
        stderr = []

        def refused() -> bool:
            stderr.append(capfd.readouterr().err)
            return "retrying" in "".join(stderr)

        await wait_until(refused, timeout=60, what="a refused attempt")
        await asyncio.to_thread(server.start)
        a = await task
        assert "fibonacci(n - 1)" in a.text
    finally:
        await inf.close()
        server.stop()


async def test_server_that_stays_down_is_a_clear_error_and_the_key_is_not_logged(team_key, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{free_port()}"
    inf = await started(team_settings(url))
    try:
        with pytest.raises(InferenceError, match=f"inference server {url} unreachable for 1[5-9] s") as err:
            await inf.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=4)
    finally:
        await inf.close()
    out, logged = capfd.readouterr()
    assert "retrying" in logged  # the workers did log every attempt; the key is in none of it
    for text in (out, logged, caplog.text, str(err.value)):
        assert KEY not in text


async def test_the_key_is_never_logged(llama_server, team_key, monkeypatch, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    inf = await started(team_settings(llama_server.url))
    try:
        assert (await inf.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=4)).text
        monkeypatch.setenv(KEY_ENV, "wrong-" + KEY)
        await inf.close()
        inf = await started(team_settings(llama_server.url))
        with pytest.raises(InferenceError, match="401"):
            await inf.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=4)
    finally:
        await inf.close()
    out, logged = capfd.readouterr()
    for text in (out, logged, caplog.text):  # "wrong-<key>" contains the key too
        assert KEY not in text


def test_a_key_over_plain_http_to_another_host_is_warned_about(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    caplog.set_level(logging.WARNING)
    OpenAIBackend(url="http://192.0.2.7:8080", api_key_env=KEY_ENV)  # constructing sends nothing
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "plain HTTP to 192.0.2.7" in warned[0] and KEY not in warned[0]
    caplog.clear()
    for url in ("https://192.0.2.7:8443", "http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"):
        OpenAIBackend(url=url, api_key_env=KEY_ENV)
    monkeypatch.delenv(KEY_ENV)
    OpenAIBackend(url="http://192.0.2.7:8080", api_key_env=KEY_ENV)  # no key, nothing to leak
    assert not caplog.records
