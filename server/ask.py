"""``engram-ls ask PATH QUESTION``: retrieve from the workspace's engrams, route, stream the answer, cite sources."""

from __future__ import annotations

import asyncio
import json
import sys

from engram_ls.inference import Inference, InferenceError, InferenceSettings, Snippet, classify
from engram_ls.retrieval import Engram


def _settings(args) -> InferenceSettings:
    settings = InferenceSettings(backend=args.backend or "llama", url=args.url)
    if args.model_path is not None:
        settings.coding.path = settings.research.path = str(args.model_path)
    return settings


async def _answer(args, snippets: list[Snippet], role: str):
    out = sys.stdout
    streamed = not args.json

    def show(piece: str) -> None:
        out.write(piece)
        out.flush()

    async with Inference(_settings(args)) as inference:
        return await inference.ask(args.question, snippets, role=role, max_tokens=args.max_tokens,
                                   on_token=show if streamed else None)


def run_ask(args) -> int:
    if not args.path.is_dir():
        print(f"engram-ls: error: not a directory: {args.path}", file=sys.stderr)
        return 2
    if not args.question.strip():
        print("engram-ls: error: the question is empty", file=sys.stderr)
        return 2
    engram = Engram.open(args.path)
    if engram.load_warning:
        print(f"engram-ls: {engram.load_warning}", file=sys.stderr)
    summary = engram.index_workspace()
    if summary.encoded_files or summary.removed_files or not engram.store_path.exists():
        engram.save()
    hits = engram.search(args.question, k=args.k)
    snippets = [Snippet(h.path, h.start_line, h.end_line, h.text) for h in hits]
    role = args.role or classify(args.question)[0]
    try:
        answer = asyncio.run(_answer(args, snippets, role))
    except InferenceError as e:
        print(f"\nengram-ls: error: {e}", file=sys.stderr)
        return 1
    cited = answer.cited or []
    if args.json:
        print(json.dumps({
            "answer": answer.text, "role": answer.role, "model": answer.model, "usage": answer.usage,
            "citations": [{"path": s.path, "start_line": s.start_line, "end_line": s.end_line} for s in cited],
        }))
    else:
        print("\n\nSources:")
        for s in cited:
            print(f"  {s.path}:{s.start_line}-{s.end_line}")
        if not cited:
            print("  (no workspace context matched the question)")
    return 0
