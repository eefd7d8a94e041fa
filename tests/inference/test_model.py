"""Real workers on the shipped Qwen2.5-Coder-0.5B model (llama-cpp-python, GGUF from PyPI)."""

import asyncio
import os
import signal

import pytest
import pytest_asyncio

from engram_ls.inference import Inference, InferenceSettings, Snippet, models
from engram_ls.inference.prompts import suggestion_ended

from .conftest import wait_until

pytestmark = [pytest.mark.model, pytest.mark.asyncio(loop_scope="module")]

FIB_PREFIX = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "
FIB_SUFFIX = "\n\n\nprint(fibonacci(10))\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def qwen():
    inf = Inference(InferenceSettings(heartbeat_s=1.0, hang_timeout_s=20.0))
    await inf.start()
    yield inf
    await inf.close()


async def test_shipped_model_is_assembled_and_verified():
    path = models.model_path()
    assert path.stat().st_size > 400_000_000
    assert path.with_suffix(".verified").read_text() == models.SHIPPED[models.DEFAULT_MODEL].sha256


async def test_hello_reports_the_model(qwen):
    status = qwen.status()
    assert "Qwen2.5 Coder 0.5B" in status["coding"]["model"]
    assert status["coding"]["fim"] is True and status["coding"]["backend"] == "llama"


async def test_fim_completion_writes_the_missing_code(qwen):
    toks = []
    a = await qwen.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=16, on_token=toks.append)
    assert "fibonacci(n - 1)" in a.text and "fibonacci(n - 2)" in a.text
    assert a.text == "".join(toks) and len(toks) > 1
    assert a.role == "coding" and a.usage["completion_tokens"] <= 16


async def test_fim_uses_cross_file_context(qwen):
    ctx = [Snippet("shop/pricing.py", 1, 3, "def apply_discount(amount, rate):\n    return amount * (1 - rate)\n")]
    a = await qwen.complete("from shop.pricing import apply_discount\n\ndef checkout(total):\n    return ",
                            "\n", ctx, max_tokens=12, path="shop/cart.py")
    assert "apply_discount(" in a.text
    assert a.cited == ctx


async def test_fim_inline_stop_ends_at_the_suggestion_s_end(qwen):
    """An inline completion stops where its suggestion ends instead of writing on to max_tokens."""
    prefix = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n"
    free = await qwen.complete(prefix, "", max_tokens=48)
    assert suggestion_ended(free.text), free.text  # the model writes on past the function here
    stopped = await qwen.complete(prefix, "", max_tokens=48, inline_stop=True)
    assert stopped.usage["completion_tokens"] < free.usage["completion_tokens"]
    assert suggestion_ended(stopped.text) and free.text.startswith(stopped.text)
    assert stopped.text.split("\n\n")[0] == free.text.split("\n\n")[0]


async def test_chat_answer_from_context(qwen):
    ctx = [Snippet("net/http.py", 4, 8, "def fetch_url(url, timeout=5):\n    \"\"\"Download a web page.\"\"\"\n")]
    a = await qwen.ask("What does fetch_url do?", ctx, role="research", max_tokens=24)
    assert a.text.strip() and a.role == "research" and a.cited == ctx


async def test_cancel_stops_within_tokens(qwen):
    toks = []
    task = asyncio.create_task(qwen.ask("Write a long story about a compiler.", role="coding", max_tokens=400,
                                        request_id="long-story", on_token=toks.append))
    await wait_until(lambda: len(toks) >= 2, timeout=120, what="tokens")
    await qwen.cancel("long-story")
    a = await task
    assert a.cancelled and a.usage["completion_tokens"] < 400
    assert len(toks) <= a.usage["completion_tokens"]
    again = await qwen.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=4)  # the worker is free again
    assert again.text


async def test_kill_9_of_a_busy_worker_is_retried(qwen):
    reference = await qwen.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=12)
    toks = []
    task = asyncio.create_task(qwen.complete(FIB_PREFIX, FIB_SUFFIX, max_tokens=12, on_token=toks.append))
    await wait_until(lambda: toks, timeout=120, what="tokens")
    victim = qwen.pools["coding"].workers[0].pid
    os.kill(victim, signal.SIGKILL)
    a = await task
    assert a.retried and a.text == reference.text
    await wait_until(lambda: qwen.status()["coding"]["alive"] == 1 and victim not in qwen.status()["coding"]["pids"],
                     timeout=120, what="restart")
