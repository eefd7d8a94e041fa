"""``engram-ls complete WORKSPACE --requests-file R.jsonl``: batch completions, for scripts and benchmarks.

Each request is what an editor would send: a document ``path`` (relative to the workspace) whose unsaved buffer is
``prefix + suffix``, the cursor between them. Context never comes from that document (as in the server, where its
buffer is the local window), so the saved text of the file is never retrieved; other requests still see it.
Context (``--context engram``), prompt building, workers and the suggestion's clean-up are the inline completion's
own (``completion.py``); ``--context given`` uses each request's own ``snippets`` instead (a benchmark's BM25 or
oracle context, through the same prompt builder). Output: one JSON line a request, ``{"id", "completion",
"citations": [{"path", "start_line", "end_line"}]}`` — the citations are the snippets the prompt held.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

from engram_ls.inference import Inference, InferenceError, InferenceSettings, Snippet
from engram_ls.inference.models import completion_model
from engram_ls.inference.settings import physical_cores
from engram_ls.retrieval.walk import is_secret_path

from .ask import _run_interruptible
from .cli import EXIT_FAILED, CliError, _open, ensure_index, read_text
from .completion import STOPS, context_hits, fill, suggestion

FIELDS = {"id": (str, int), "path": str, "prefix": str, "suffix": str}
SNIPPET_FIELDS = {"path": str, "start_line": int, "end_line": int, "text": str}


def _given_snippets(item: dict) -> list[Snippet]:
    """A request's own ``snippets`` (``--context given``: a benchmark's baseline or oracle context)."""
    given = item.get("snippets", [])
    if not isinstance(given, list):
        raise ValueError("'snippets' must be a list")
    out = []
    for s in given:
        if not isinstance(s, dict) or any(not isinstance(s.get(k), t) or isinstance(s.get(k), bool)
                                          for k, t in SNIPPET_FIELDS.items()):
            raise ValueError("each snippet needs 'path', 'start_line', 'end_line' and 'text'")
        out.append(Snippet(s["path"], s["start_line"], s["end_line"], s["text"]))
    return out


def read_requests(path: Path) -> list[dict]:
    """The requests, all checked before any model starts: a bad line is a usage error naming the line."""
    lines = read_text(path, "requests file").splitlines()
    requests = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("a line must be a JSON object")
            for name, kind in FIELDS.items():
                if name not in item:
                    raise ValueError(f"missing {name!r}")
                if not isinstance(item[name], kind) or isinstance(item[name], bool):
                    raise ValueError(f"{name!r} must be a {'string or integer' if name == 'id' else 'string'}")
            rel = PurePosixPath(item["path"])
            if not item["path"] or rel.is_absolute() or ".." in rel.parts or "\\" in item["path"]:
                raise ValueError(f"'path' must be relative to the workspace, got {item['path']!r}")
            snippets = _given_snippets(item)
        except ValueError as e:
            raise CliError(f"{path}:{n}: bad request line ({e})") from None
        requests.append({**item, "path": rel.as_posix(), "snippets": snippets})
    return requests


def _settings(args) -> InferenceSettings:
    settings = InferenceSettings(backend=args.backend or "llama", url=args.url)
    settings.coding.path = settings.research.path = str(args.model_path or completion_model(physical_cores()))
    settings.coding.threads = physical_cores()   # the research worker idles: completions get every core
    settings.research.threads = 1
    settings.coding.context_length = settings.research.context_length = args.context_length
    # A batch has no user waiting, and on a loaded machine a busy worker may answer pings late: a slow request
    # is not a hung one (the server's 10 s would restart the worker and start the request over).
    settings.hang_timeout_s, settings.request_timeout_s = 60.0, 900.0
    if getattr(args, "stub_delay_ms", 0):
        settings.stub_delay_ms = args.stub_delay_ms
    return settings


def _citations(answer) -> list[dict]:
    return [{"path": s.path, "start_line": s.start_line, "end_line": s.end_line} for s in answer.cited]


async def _complete_all(args, engram, requests: list[dict]) -> None:
    stop = STOPS + ["\n"] if args.one_line else STOPS
    async with Inference(_settings(args)) as inference:
        for item in requests:
            rel, prefix, suffix = item["path"], item["prefix"], item["suffix"]
            if is_secret_path(PurePosixPath(rel).name):  # never sent to a model, as in the editor
                print(json.dumps({"id": item["id"], "completion": "", "citations": []}), flush=True)
                continue
            hits = []
            if args.context == "given":
                hits = [(engram.root, s) for s in item["snippets"]]
            elif args.context == "engram":  # never from the document itself: its buffer is the local window
                hits = context_hits(engram, rel, prefix, suffix, args.similar)
            answer = await fill(inference, prefix, suffix, hits, max_tokens=args.max_tokens, path=rel,
                                repo=engram.root.name, stop=stop, suffix_budget=args.suffix_tokens)
            text = suggestion(answer.text, prefix, suffix)
            if args.one_line:
                text = text.split("\n", 1)[0]
            print(json.dumps({"id": item["id"], "completion": text, "citations": _citations(answer)}), flush=True)


def run_complete(args) -> int:
    requests = read_requests(args.requests_file)
    engram = _open(args.path)
    ensure_index(engram)
    try:
        _run_interruptible(_complete_all(args, engram, requests))
    except InferenceError as e:
        raise CliError(str(e), EXIT_FAILED) from None
    finally:
        sys.stdout.flush()
    return 0
