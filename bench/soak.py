"""Soak: 10 concurrent request streams on one engram-ls server for a fixed time (default 5 minutes).

Each stream loops over edits (didChange on its own document), hovers, searches and inline completions. Reports
requests, errors and the server's RSS at the start and the end. Stub model by default (the point is the server);
``--real`` uses the shipped model. Run: ``python bench/soak.py [--seconds 300] [--real]``; writes
bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.retrieval.conftest import make_workspace  # noqa: E402
from tests.server.conftest import indexed, start, stop  # noqa: E402

OUT = Path(__file__).parent / "results"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def stream(client, root: Path, n: int, deadline: float, stats: dict) -> None:
    rng = random.Random(n)
    path = root / f"stream_{n}.py"
    text = f"def handler_{n}(value):\n    total = value * {n}\n    return total\n"
    path.write_text(text)
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=text)))
    version = 1
    typed = ""  # what this stream has typed at (1, 4) and not yet deleted: the text stays bounded, as in an editor
    while time.monotonic() < deadline:
        op = rng.choice(["edit", "edit", "hover", "search", "inline"])
        try:
            if op == "edit":
                version += 1
                if len(typed) < 12 and (not typed or rng.random() < 0.6):
                    new, end = rng.choice(["x", "y_", "z1"]), 4
                    typed = new + typed
                else:  # backspace over what was typed
                    new, end = "", 4 + len(typed[:1])
                    typed = typed[1:]
                client.text_document_did_change(types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(1, 4), types.Position(1, end)), text=new)]))
            elif op == "hover":
                await client.text_document_hover_async(types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri), position=types.Position(0, 6)))
            elif op == "search":
                await client.workspace_execute_command_async(types.ExecuteCommandParams(
                    command="engram.search", arguments=[{"query": rng.choice(["discount", "download page", "cart"])}]))
            else:
                await client.text_document_inline_completion_async(types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri), position=types.Position(2, 4),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
            stats["requests"] += 1
        except Exception as e:  # every error counts
            stats["errors"] += 1
            stats.setdefault("examples", []).append(f"{op}: {e}"[:200])


async def main_async(seconds: float, real: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix="engram-soak-"))
    root = make_workspace(work / "ws")
    options = {"completion": {"debounceMs": 50, "maxTokens": 16}, "hover": {"modelTimeoutMs": 1000}}
    if not real:
        options["backend"] = {"kind": "stub"}
    client = await start(root, work / "cache", options=options)
    try:
        await indexed(client)
        pid = client._server.pid
        stats = {"requests": 0, "errors": 0}
        start_rss = rss_mb(pid)
        samples = []
        deadline = time.monotonic() + seconds
        tasks = [asyncio.ensure_future(stream(client, root, n, deadline, stats)) for n in range(10)]
        while time.monotonic() < deadline:
            await asyncio.sleep(10)
            samples.append(round(rss_mb(pid), 1))
        await asyncio.gather(*tasks)
        end_rss = rss_mb(pid)
        warm = samples[min(5, len(samples) - 1)] if samples else start_rss  # after the first minute
        return {"seconds": seconds, "streams": 10, "model": "qwen-0.5b" if real else "stub", **stats,
                "rss_start_mb": round(start_rss, 1), "rss_after_warmup_mb": warm, "rss_end_mb": round(end_rss, 1),
                "growth_after_warmup_mb": round(end_rss - warm, 1), "rss_samples_mb": samples}
    finally:
        await stop(client)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--real", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args.seconds, args.real))
    OUT.mkdir(exist_ok=True)
    (OUT / "soak.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "rss_samples_mb"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
