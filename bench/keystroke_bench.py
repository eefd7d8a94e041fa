"""Keystroke -> inline completion latency in the real server, for each shipped coding model (issue 13).

The server runs over stdio (pytest-lsp's client) on a real project — one of the completion evaluation's recent
packages — with its default settings (150 ms debounce, engram context, the completion's prompt budget
``completion.contextTokens`` and ``completion.suffixTokens``, the cores split over the workers but for the coding
worker's prompt reading) and only ``models.coding.path`` set. At each of a few evaluation targets the file is
opened as an unsaved buffer (prefix + suffix, as ``engram-ls complete`` sees it), then the target's own text is
typed one character at a time, each keystroke followed by an automatic inline-completion request; the latency is
from the keystroke's didChange to the answer, and the next key waits for it (a typist who pauses to read).

The first key at a spot pays for the whole prompt (a new file section); the keys after it re-use llama.cpp's cached
prefix (the snippets and the file above the cursor stay put), so both are reported apart. A key that types the start
of the last suggestion is answered with its rest, without the model (``typed_ahead`` in ``engram.status``): those
keys are counted, and the keys the model answered get a p50 of their own.

Run: ``python bench/keystroke_bench.py [--models NAME,NAME] [--spots 5] [--keys 6]`` after
``python -m bench.completion_eval --prepare`` has unpacked the projects; ``--context-tokens 4096,1024`` runs each
model at each prompt budget (``completion.contextTokens``), ``--suffix-tokens 64,100000`` at each cap on the text
after the cursor (``completion.suffixTokens``; a cap above a quarter of the window is the build before the cap).
Writes bench/results/keystroke[-TAG].{json,md}.
"""

from __future__ import annotations

import argparse
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
from bench.completion_eval.__main__ import choose  # noqa: E402
from engram_ls.inference.models import models_dir  # noqa: E402
from engram_ls.server.config import CompletionSettings  # noqa: E402

OUT = Path(__file__).parent / "results"
SERVER = [sys.executable, "-m", "engram_ls.server.cli", "serve", "--log-level", "warning"]
MODELS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
PROJECT = "smolagents"


async def start(root: Path, cache: Path, model: str, completion: dict, threads: int = 0):
    env = dict(os.environ, ENGRAM_LS_CACHE=str(cache), ENGRAM_LS_MODELS=str(models_dir()))
    client = await ClientServerConfig(server_command=SERVER, server_env=env).start()
    caps = client_capabilities("visual-studio-code")
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    await client.initialize_session(types.InitializeParams(
        capabilities=caps, workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        initialization_options={"models": {"coding": {"path": model, "threads": threads}},
                                "hover": {"useModel": False}} | ({"completion": completion} if completion else {})))
    while True:
        info = next(iter((await client.workspace_execute_command_async(
            types.ExecuteCommandParams("engram.status")))["index"].values()), None)
        if info and not info["indexing"]:
            return client
        await asyncio.sleep(0.05)


async def typed_ahead(client) -> int:
    """Keys the server answered with the rest of its last suggestion so far (no model)."""
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams("engram.status"))
    return status["completion"]["typed_ahead"]


async def type_at(client, root: Path, target: dict, keys: int, version: int,
                  shown: list | None = None) -> tuple[list[tuple[float, bool]], int]:
    """Opens the target's file as prefix + suffix and types ``keys`` characters of its line at the cursor: each
    key's (latency in ms, NaN without a suggestion; whether it was typed ahead, without the model). The suggestions
    go to ``shown`` (two builds of the server can then be compared for what they offer)."""
    uri = (root / target["path"]).as_uri()
    prefix, suffix = target["prefix"], target["suffix"]
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=uri, language_id="python", version=version, text=prefix + suffix)))
    line = prefix.count("\n")
    col = len(prefix) - (prefix.rfind("\n") + 1)
    typed = target["target"][len(prefix.rsplit("\n", 1)[-1].lstrip()):]
    out = []
    ahead = await typed_ahead(client)
    for ch in typed[:keys]:
        version += 1
        t = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(types.Position(line, col),
                                                                         types.Position(line, col)), text=ch)]))
        col += 1
        answer = await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, col),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
        ms = (time.perf_counter() - t) * 1000 if answer is not None else float("nan")  # none: not a latency
        before, ahead = ahead, await typed_ahead(client)
        out.append((ms, ahead > before))
        if shown is not None:
            items = answer.items if isinstance(answer, types.InlineCompletionList) else answer or []
            shown.append(str(items[0].insert_text) if items else None)
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))
    return out, version


async def one_model(model: str, root: Path, targets: list[dict], keys: int, work: Path,
                    context_tokens: int | None, suffix_tokens: int | None = None, threads: int = 0) -> dict:
    completion = {k: v for k, v in (("contextTokens", context_tokens), ("suffixTokens", suffix_tokens))
                  if v is not None}
    client = await start(root, work / f"cache-{model}", model, completion, threads)
    try:
        t = time.perf_counter()  # model load and the first whole prompt: reported apart, not a keystroke
        warm, version = await type_at(client, root, targets[0], 1, 1)
        warm_ms = (time.perf_counter() - t) * 1000
        first, later, shown = [], [], []
        for target in targets[1:]:
            got, version = await type_at(client, root, target, keys, version + 1, shown)
            first += got[:1]
            later += got[1:]
    finally:
        await client.shutdown_session()
        await client.stop()

    def pct(keys, p):
        values = [ms for ms, _ in keys if ms == ms]
        return round(float(np.percentile(values, p))) if values else None

    every = first + later
    defaults = CompletionSettings()
    return {"model": model, "context_tokens": context_tokens or defaults.context_tokens,
            "suffix_tokens": defaults.suffix_tokens if suffix_tokens is None else suffix_tokens,
            "warm_up_ms": round(warm_ms), "spots": len(targets) - 1, "keys": len(every),
            "no_suggestion": sum(ms != ms for ms, _ in every),
            "p50_ms": pct(every, 50), "p95_ms": pct(every, 95),
            "first_key_p50_ms": pct(first, 50), "next_keys_p50_ms": pct(later, 50), "next_keys_p95_ms": pct(later, 95),
            "typed_ahead": sum(a for _, a in every), "model_keys_p50_ms": pct([k for k in every if not k[1]], 50),
            "latencies_ms": [round(ms) if ms == ms else None for ms, _ in every],
            "typed_ahead_keys": [a for _, a in every], "suggestions": shown}


def main() -> int:
    p = argparse.ArgumentParser(prog="python bench/keystroke_bench.py")
    p.add_argument("--work", type=Path, default=Path("/tmp/engram-completion-eval"))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--spots", type=int, default=5)
    p.add_argument("--keys", type=int, default=6)
    p.add_argument("--context-tokens", default="", help="comma-separated completion.contextTokens values to run "
                   "for each model (default: the server's default only)")
    p.add_argument("--suffix-tokens", default="", help="comma-separated completion.suffixTokens values to run "
                   "for each model and budget (default: the server's default only)")
    p.add_argument("--coding-threads", type=int, default=0, help="models.coding.threads (default 0: the cores "
                   "split over all workers)")
    p.add_argument("--tag", default="", help="suffix of the results files")
    args = p.parse_args()
    targets = [t for t in choose(args.work, 60) if t["project"] == PROJECT]
    seen, spots = set(), []
    for t in targets:  # one spot per file, so each spot's first key is a new file section
        if t["path"] not in seen and len(t["target"]) - len(t["prefix"].rsplit("\n", 1)[-1].lstrip()) > args.keys:
            seen.add(t["path"])
            spots.append(t)
    spots = spots[:args.spots + 1]
    work = Path(tempfile.mkdtemp(prefix="engram-keystroke-"))
    root = work / PROJECT
    shutil.copytree(args.work / "projects" / PROJECT, root)
    results = []
    try:
        budgets = [int(b) for b in args.context_tokens.split(",") if b] or [None]
        suffixes = [int(b) for b in args.suffix_tokens.split(",") if b] or [None]
        for model in args.models.split(","):
            for budget in budgets:
                for suffix in suffixes:
                    results.append(asyncio.run(one_model(model, root, spots, args.keys, work, budget, suffix,
                                                         args.coding_threads)))
                    results[-1]["coding_threads"] = args.coding_threads or "split"
            print(json.dumps({k: v for k, v in results[-1].items() if k not in ("latencies_ms", "suggestions")}),
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = {"project": PROJECT, "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
    OUT.mkdir(exist_ok=True)
    stem = f"keystroke{'-' + args.tag if args.tag else ''}"
    (OUT / f"{stem}.json").write_text(json.dumps({**meta, "models": results}, indent=1))
    rows = ["| model | prompt budget | suffix tokens | keystrokes | p50 / p95 | first key at a spot, p50 | "
            "next keys p50 / p95 | typed ahead (no model) | keys the model answered, p50 | "
            "warm-up (load + first prompt) |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows += [f"| {r['model']} | {r['context_tokens']} | {r['suffix_tokens']} | {r['keys']} at {r['spots']} spots | "
             f"{r['p50_ms']} / {r['p95_ms']} ms | "
             f"{r['first_key_p50_ms']} ms | {r['next_keys_p50_ms']} / {r['next_keys_p95_ms']} ms | "
             f"{r['typed_ahead']} | {r['model_keys_p50_ms']} ms | {r['warm_up_ms']} ms |" for r in results]
    rows += ["", f"Real server over stdio on {PROJECT} ({meta['cores']} cores, load average "
             f"{' '.join(map(str, meta['load_average']))} at the end, {meta['when']}); default settings but the "
             "coding model; each key waits for the previous answer."]
    (OUT / f"{stem}.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
