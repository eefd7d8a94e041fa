"""Fault row 1: a worker killed (SIGKILL) or frozen (SIGSTOP) mid-generation, through the real server."""

import asyncio
import os
import signal

from tests.inference.conftest import pid_alive
from tests.server.conftest import command, indexed, start, stop, until

SLOW = {"backend": {"kind": "stub"}, "inference": {"stubDelayMs": 30, "heartbeatS": 0.3, "hangTimeoutS": 2.0}}


async def worker_pids(client, role="research"):
    return (await command(client, "engram.status"))["models"][role]["pids"]


async def test_killed_and_frozen_workers_are_replaced_and_requests_answered(workspace, tmp_path):
    client = await start(workspace, tmp_path / "cache", options=SLOW)

    async def research():
        return (await command(client, "engram.status"))["models"]["research"]

    async def idle():
        r = await research()
        return isinstance(r, dict) and r["alive"] == r["size"] and r["busy"] == 0 and r["queued"] == 0

    async def generating():
        return (await research())["busy"] == 1

    try:
        await indexed(client)
        await until(lambda: worker_pids(client), what="workers")
        all_pids = set(await worker_pids(client)) | set(await worker_pids(client, "coding"))
        for sig in (signal.SIGKILL, signal.SIGSTOP):
            victim = (await worker_pids(client))[0]
            await until(idle, what="the research worker to be idle (warmed up)")
            task = asyncio.ensure_future(command(client, "engram.explainWorkspace", {"question": "explain the cart"}))
            await until(generating, what="the answer to be handed to the research worker")
            os.kill(victim, sig)  # mid-generation: the answer takes 96 tokens x 30 ms
            answer = await asyncio.wait_for(task, 120)
            assert answer["markdown"].startswith("stub_")  # answered by the retried request, not an error

            async def replaced():
                pids = await worker_pids(client)
                return pids and victim not in pids
            new = await until(replaced, what="a replacement worker")
            all_pids |= set(await worker_pids(client))
            assert not pid_alive(victim) or sig == signal.SIGSTOP and victim not in await worker_pids(client)
            status = await command(client, "engram.status")
            assert status["models"]["research"]["restarts"] >= 1 and new
        # the server keeps serving everything else
        hits = await command(client, "engram.search", {"query": "download a web page"})
        assert hits["results"][0]["path"] == "net/http_client.py"
    finally:
        await stop(client)
    await until(_async(lambda: not any(pid_alive(p) for p in all_pids)), what="no worker left behind")


def _async(fn):
    async def call():
        return fn()
    return call
