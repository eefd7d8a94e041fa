"""Language-server benchmark over real stdio (pytest-lsp's client), in one run.

- hover fast path p50/p95 on a ~50k-chunk workspace (model disabled for hover);
- initial indexing of a ~30 MB workspace: the longest event-loop stall, measured as the worst latency of a cheap
  request (codeAction on an unopened document) sent every 20 ms while indexing runs, and the worst latency of a
  search (``engram/search``, which reads the index being built) sent beside it;
- the index's share of the server's RSS: RSS after indexing that workspace minus RSS of a server on an empty folder,
  against the raw source bytes;
- a restart on the saved store: time to the first hover answer, and hover p50/p95 in the first seconds;
- typing storm with the shipped 0.5B model: 200 didChange + 200 inline-completion requests in 10 s — generations
  started vs returned, wasted tokens, and the p99 of non-model requests during the storm;
- keystroke -> inline completion latency with the 0.5B model (p50, p95), default debounce.

Run: ``python bench/server_bench.py`` (``--only-big``: the workspace figures alone, keeping the last storm's).
Writes bench/results/server.{json,md}.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.retrieval_bench import SCALE_PACKAGES, copy_packages  # noqa: E402
from tests.retrieval.conftest import make_workspace  # noqa: E402

OUT = Path(__file__).parent / "results"
SERVER = [sys.executable, "-m", "engram_ls.server.cli", "serve", "--log-level", "warning"]


async def start(root: Path, cache: Path, options: dict):
    config = ClientServerConfig(server_command=SERVER, server_env=dict(os.environ, ENGRAM_LS_CACHE=str(cache)))
    client = await config.start()
    caps = client_capabilities("visual-studio-code")
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    await client.initialize_session(types.InitializeParams(
        capabilities=caps, workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        initialization_options=options))
    return client


async def status(client) -> dict:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams("engram.status"))


async def cheap(client, uri: str) -> float:
    t = time.perf_counter()
    await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri),
        range=types.Range(types.Position(0, 0), types.Position(0, 0)),
        context=types.CodeActionContext(diagnostics=[])))
    return (time.perf_counter() - t) * 1000


def rss_mb(client) -> float:
    """The server process's resident set (pytest-lsp's client holds the subprocess)."""
    with open(f"/proc/{client._server.pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


async def timed_search(client, query: str) -> float:
    t = time.perf_counter()
    await client.protocol.send_request_async("engram/search", {"query": query, "k": 5})
    return (time.perf_counter() - t) * 1000


async def wait_indexed(client) -> dict:
    while True:
        info = next(iter((await status(client))["index"].values()), None)
        if info and not info["indexing"]:
            return info
        await asyncio.sleep(0.05)


async def empty_rss(work: Path) -> float:
    root = work / "empty"
    root.mkdir()
    client = await start(root, work / "cache-empty", {"backend": {"kind": "stub"}, "hover": {"useModel": False}})
    try:
        await wait_indexed(client)
        await timed_search(client, "warm up")
        return rss_mb(client)
    finally:
        await client.shutdown_session()
        await client.stop()


def pct(values, p):
    return float(np.percentile(np.asarray(values), p)) if values else float("nan")


async def hovers(client, uri: str, positions) -> list[float]:
    out = []
    for line, col in positions:
        t = time.perf_counter()
        await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, col + 7)))
        out.append((time.perf_counter() - t) * 1000)
    return out


def open_target(client, root: Path):
    target = next(root.rglob("numpy/_core/fromnumeric.py"))
    text = target.read_text()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=target.as_uri(), language_id="python", version=1, text=text)))
    lines = text.splitlines()
    positions = [(i, len(l) - len(l.lstrip()) + 1) for i, l in enumerate(lines) if l.strip().startswith("return ")]
    return target.as_uri(), positions[:60]


async def big_workspace(work: Path) -> dict:
    root = work / "big"
    copy_packages(SCALE_PACKAGES, root, blank_docstrings=False)
    raw = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    base_rss = await empty_rss(work)
    options = {"backend": {"kind": "stub"}, "hover": {"useModel": False}}
    client = await start(root, work / "cache-big", options)
    ghost = (root / "not-open.py").as_uri()
    stalls, searches = [], []
    t0 = time.perf_counter()
    try:
        while True:
            stalls.append(await cheap(client, ghost))
            searches.append(await timed_search(client, "parse the array shape"))
            s = await status(client)
            info = next(iter(s["index"].values()))
            if not info["indexing"]:
                break
            await asyncio.sleep(0.02)
        index_s = time.perf_counter() - t0
        chunks = info["chunks"]
        await timed_search(client, "warm up")
        indexed_rss = rss_mb(client)
        uri, positions = open_target(client, root)
        hover_ms = await hovers(client, uri, positions)
    finally:  # shutdown saves the store
        await client.shutdown_session()
        await client.stop()
    # restart on the saved store: the first hover waits for the store to load
    t = time.perf_counter()
    client = await start(root, work / "cache-big", options)
    try:
        uri, positions = open_target(client, root)
        first = await hovers(client, uri, positions[:1])
        first_after_start = (time.perf_counter() - t) * 1000
        early = await hovers(client, uri, positions[1:21])
        info = await wait_indexed(client)
    finally:
        await client.shutdown_session()
        await client.stop()
    return {"workspace_mb": round(raw / 1e6, 1), "chunks": chunks, "index_seconds": round(index_s, 1),
            "max_stall_ms": round(max(stalls), 1), "stall_p99_ms": round(pct(stalls, 99), 1),
            "max_search_while_indexing_ms": round(max(searches), 1),
            "search_while_indexing_ms_p95": round(pct(searches, 95), 1),
            "rss_empty_mb": round(base_rss, 1), "rss_indexed_mb": round(indexed_rss, 1),
            "index_share_to_source": round((indexed_rss - base_rss) * 2**20 / raw, 2),
            "hover_fast_ms_p50": round(pct(hover_ms, 50), 1), "hover_fast_ms_p95": round(pct(hover_ms, 95), 1),
            "restart_first_hover_ms": round(first[0], 1), "restart_start_to_first_hover_ms": round(first_after_start),
            "restart_hover_ms_p95": round(pct(first + early, 95), 1), "restart_chunks": info["chunks"]}


async def storm(work: Path) -> dict:
    root = make_workspace(work / "storm")
    client = await start(root, work / "cache-storm", {"completion": {"maxTokens": 24}})
    try:
        while next(iter((await status(client))["index"].values()))["indexing"]:
            await asyncio.sleep(0.05)
        await client.workspace_execute_command_async(types.ExecuteCommandParams("engram.search", [{"query": "x"}]))
        path = root / "shop/cart.py"
        uri = path.as_uri()
        text = path.read_text()
        client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        line = text.splitlines().index("        return apply_discount(subtotal)")
        # warm the model
        await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, 8),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        base = (await status(client))["completion"]
        version = 1
        pending, cheap_ms = [], []
        col = 8
        t0 = time.perf_counter()
        for i in range(200):
            version += 1
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=
                [types.TextDocumentContentChangePartial(range=types.Range(types.Position(line, col),
                                                                          types.Position(line, col)), text="x")]))
            col += 1
            pending.append(asyncio.ensure_future(client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, col),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)))))
            cheap_ms.append(await cheap(client, uri))
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.05 - time.perf_counter()))
        storm_s = time.perf_counter() - t0
        results = await asyncio.gather(*pending, return_exceptions=True)
        stats = (await status(client))["completion"]
        delta = {k: stats[k] - base[k] for k in stats}
        # keystroke -> inline completion, default debounce, one request at a time
        latencies = []
        for i in range(8):
            version += 1
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=
                [types.TextDocumentContentChangePartial(range=types.Range(types.Position(line, col),
                                                                          types.Position(line, col)), text="y")]))
            col += 1
            t = time.perf_counter()
            await client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, col),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
            latencies.append((time.perf_counter() - t) * 1000)
        return {"storm_seconds": round(storm_s, 2), "requests": 200,
                "errors": sum(isinstance(r, BaseException) for r in results),
                "non_empty_results": sum(1 for r in results if r is not None and not isinstance(r, BaseException)),
                "generations_started": delta["started"], "generations_returned": delta["returned"],
                "generations_discarded": delta["discarded"], "superseded_requests": delta["superseded"],
                "wasted_tokens": delta["wasted_tokens"],
                "non_model_p99_ms": round(pct(cheap_ms, 99), 1),
                "keystroke_to_inline_ms_p50": round(pct(latencies, 50)), "keystroke_to_inline_ms_p95": round(pct(latencies, 95))}
    finally:
        await client.shutdown_session()
        await client.stop()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="engram-server-bench-"))
    only_big = "--only-big" in sys.argv  # the workspace figures alone (no model): keeps the last storm's figures
    try:
        result = {"big": asyncio.run(big_workspace(work))}
        if only_big and (OUT / "server.json").exists():
            result["storm"] = json.loads((OUT / "server.json").read_text())["storm"]
            result["storm_from_earlier_run"] = True
        else:
            result["storm"] = asyncio.run(storm(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "server.json").write_text(json.dumps(result, indent=2))
    b, s = result["big"], result["storm"]
    rows = ["| metric | measured | target | met |", "|---|---|---|---|",
            f"| hover fast path p50 / p95, {b['chunks']} chunks | {b['hover_fast_ms_p50']} / {b['hover_fast_ms_p95']} ms "
            f"| p95 <= 50 ms | {'yes' if b['hover_fast_ms_p95'] <= 50 else 'no'} |",
            f"| initial indexing of {b['workspace_mb']} MB ({b['index_seconds']} s): longest event-loop stall | "
            f"{b['max_stall_ms']} ms (p99 {b['stall_p99_ms']} ms) | <= 50 ms | {'yes' if b['max_stall_ms'] <= 50 else 'no'} |",
            f"| search while that workspace indexes: p95 / worst | {b['search_while_indexing_ms_p95']} / "
            f"{b['max_search_while_indexing_ms']} ms | p95 <= 50 ms | "
            f"{'yes' if b['search_while_indexing_ms_p95'] <= 50 else 'no'} |",
            f"| index's share of server RSS / raw source ({b['rss_indexed_mb']} - {b['rss_empty_mb']} MB) | "
            f"{b['index_share_to_source']}× | <= 3× | {'yes' if b['index_share_to_source'] <= 3 else 'no'} |",
            f"| restart on the saved store: first hover (from the first request) / from process start | "
            f"{b['restart_first_hover_ms']} / {b['restart_start_to_first_hover_ms']} ms | report | — |",
            f"| hover p95 in the first 21 hovers after a restart | {b['restart_hover_ms_p95']} ms | <= 300 ms | "
            f"{'yes' if b['restart_hover_ms_p95'] <= 300 else 'no'} |",
            f"| typing storm: 200 didChange + 200 inline requests in {s['storm_seconds']} s | generations started "
            f"{s['generations_started']}, returned {s['generations_returned']}, discarded {s['generations_discarded']}, "
            f"wasted tokens {s['wasted_tokens']}, errors {s['errors']} | only the newest runs to the end | "
            f"{'yes' if s['generations_returned'] <= 1 + 0 and s['errors'] == 0 else 'no'} |",
            f"| non-model requests during the storm, p99 | {s['non_model_p99_ms']} ms | <= 100 ms | "
            f"{'yes' if s['non_model_p99_ms'] <= 100 else 'no'} |",
            f"| keystroke → inline completion, 0.5B model, 2 cores | p50 {s['keystroke_to_inline_ms_p50']} ms, "
            f"p95 {s['keystroke_to_inline_ms_p95']} ms | report | — |"]
    table = "\n".join(rows)
    (OUT / "server.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
