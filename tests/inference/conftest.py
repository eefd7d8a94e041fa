import asyncio
import os
import time

import pytest

from engram_ls.inference import Inference, InferenceSettings


async def wait_until(predicate, timeout=30.0, what="condition"):
    """Waits for a condition (polling it), failing with a message after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stub_settings(**kw) -> InferenceSettings:
    defaults = dict(backend="stub", heartbeat_s=0.2, hang_timeout_s=1.5, stub_delay_ms=0)
    defaults.update(kw)
    return InferenceSettings(**defaults)


@pytest.fixture
async def stub():
    inf = Inference(stub_settings(stub_delay_ms=10))
    await inf.start()
    yield inf
    await inf.close()
