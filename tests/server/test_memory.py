"""Memory regression: the server's live objects stay bounded under a request storm. Counts objects (the garbage
collector's census inside the server process, after a collection), never time or RSS."""

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from lsprotocol import types

from .conftest import change, command, indexed, open_doc, search, start, stop, until

COUNTING_SERVER = [sys.executable, str(Path(__file__).with_name("counting_server.py")), "serve", "--log-level", "info"]
OPTIONS = {"backend": {"kind": "stub"}, "completion": {"debounceMs": 0}, "hover": {"modelTimeoutMs": 5000}}


async def census(client, counts: Path) -> dict:
    """The server's live objects by type, taken in its event-loop thread after a full collection."""
    seen = len(counts.read_text().splitlines()) if counts.exists() else 0
    os.kill(client._server.pid, signal.SIGUSR1)

    async def written():
        # a signal that lands on another thread runs its handler only when the main thread next runs Python
        # code: a request makes it do so
        await command(client, "engram.status")
        lines = counts.read_text().splitlines() if counts.exists() else []
        return json.loads(lines[seen]) if len(lines) > seen else None
    return await until(written, what="the object census")


async def quiet(client) -> None:
    """No generation running or queued anywhere (the hover explanations finish in the background)."""
    async def idle():
        models = (await command(client, "engram.status"))["models"]
        pools = [models.get(r) for r in ("coding", "research")]
        return all(isinstance(p, dict) and p["busy"] == 0 and p["queued"] == 0 for p in pools)
    await until(idle, what="the workers to be idle")


async def storm(client, uri: str, n: int) -> int:
    """n rounds of what an editor sends while someone types: an edit and its undo (the text ends as it began),
    inline completion, hover, code actions, a search, a status; about half of them concurrently. Returns the
    number of requests sent."""
    version = 100 + storm.versions
    sent = 0
    for i in range(n):
        version += 2
        change(client, uri, version - 1, (14, 8), (14, 8), f"x{i}")
        change(client, uri, version, (14, 8), (14, 8 + len(f"x{i}")), "")
        pos = types.Position(14, 16)
        doc = types.TextDocumentIdentifier(uri)
        await asyncio.gather(
            client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=doc, position=types.Position(14, 8),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic))),
            client.text_document_hover_async(types.HoverParams(text_document=doc, position=pos)),
            client.text_document_code_action_async(types.CodeActionParams(
                text_document=doc, range=types.Range(types.Position(10, 0), types.Position(14, 0)),
                context=types.CodeActionContext(diagnostics=[]))),
            search(client, f"total price {i % 7}", 3),
        )
        await command(client, "engram.status")
        sent += 5
    storm.versions = version
    return sent


storm.versions = 0


def growth(before: dict, after: dict) -> dict:
    types_ = set(before["types"]) | set(after["types"])
    return {t: after["types"].get(t, 0) - before["types"].get(t, 0) for t in types_
            if after["types"].get(t, 0) != before["types"].get(t, 0)}


async def test_live_objects_stay_bounded_under_a_request_storm(workspace, tmp_path):
    counts = tmp_path / "counts.jsonl"
    client = await start(workspace, tmp_path / "cache", options=OPTIONS, server=COUNTING_SERVER,
                         env={"ENGRAM_LS_COUNTS": str(counts)})
    storm.versions = 0
    try:
        await indexed(client)
        uri = open_doc(client, workspace / "shop/cart.py")
        await storm(client, uri, 30)  # warm-up: caches fill, lazy imports happen, the workers warm up
        await quiet(client)
        first = await census(client, counts)
        await storm(client, uri, 120)
        await quiet(client)
        second = await census(client, counts)
        n = await storm(client, uri, 120)
        await quiet(client)
        third = await census(client, counts)
        grew = growth(second, third)
        ours = {t: d for t, d in growth(first, third).items() if t.startswith("engram_ls.")}
        # 600 more requests (after 750) left fewer than one new live object per two requests (the leak this
        # caught kept about nine per request: every engram.* command's finished task and result) ...
        top = sorted(grew.items(), key=lambda x: -abs(x[1]))[:20]
        assert third["total"] - second["total"] < n // 2, top
        # ... no type grew with the requests (timer handles and contexts come and go by a few dozen) ...
        assert all(d < n // 4 for d in grew.values()), top
        # ... and the server's own objects are exactly as many as after the warm-up
        assert ours == {}, ours
        stats = (await command(client, "engram.status"))["completion"]
        assert stats["started"] >= n // 5  # the storm really ran generations (not answered from nothing)
    finally:
        await stop(client)
