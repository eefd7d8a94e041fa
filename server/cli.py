"""The ``engram-ls`` command: ``index``, ``search``, ``ask`` and ``serve`` (the default).

``index`` and ``search`` touch only the retrieval core, so they start fast and never import pygls or model code.
The JSON printed by ``search --json`` is a stable contract used by external benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

EXIT_USAGE = 2


class CliError(Exception):
    """A one-line error for the user; exits with code 2."""


def _version() -> str:
    try:
        return metadata.version("engram-ls")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engram-ls", description="A local, private AI code assistant (LSP).")
    parser.add_argument("--version", action="version", version=f"engram-ls {_version()}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("index", help="build or update the engram store of a workspace")
    p.add_argument("path", type=Path)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("search", help="search a workspace's engrams (builds the store when missing)")
    p.add_argument("path", type=Path)
    p.add_argument("query", nargs="?", help="natural-language or code query")
    p.add_argument("--query-file", type=Path, help="read the query (e.g. a code snippet) from a file")
    p.add_argument("--queries-file", type=Path, help="JSON lines of {id, query | query_file}: one output line each")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--scope", help="folder prefix or glob to search within")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("ask", help="ask a question about a workspace; the answer streams with citations")
    p.add_argument("path", type=Path)
    p.add_argument("question")
    p.add_argument("--role", choices=["coding", "research"], help="model role (default: routed from the question)")
    p.add_argument("--max-tokens", type=int, default=384)
    p.add_argument("-k", type=int, default=6, help="snippets retrieved as context (default 6)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--model-path", type=Path, help="a local GGUF file to use instead of the shipped model")
    p.add_argument("--backend", choices=["llama", "openai", "stub"], help="inference backend (default llama)")
    p.add_argument("--url", help="base URL of an OpenAI-compatible server (with --backend openai)")

    p = sub.add_parser("serve", help="run the language server (stdio by default)")
    _serve_args(p)
    return parser


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stdio", action="store_true", help="talk LSP on stdin/stdout (the default)")
    p.add_argument("--tcp", action="store_true", help="listen on TCP instead, for debugging")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2087)
    p.add_argument("--log-file", type=Path)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _open(path: Path, quiet: bool = True):
    from engram_ls.retrieval import Engram

    if not path.exists():
        raise CliError(f"no such path: {path}")
    if not path.is_dir():
        raise CliError(f"not a directory: {path}")
    engram = Engram.open(path)
    if engram.load_warning:
        print(f"engram-ls: {engram.load_warning}", file=sys.stderr)
    return engram


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    state = {"last": -1}

    def show(done: int, total: int, path: str) -> None:
        pct = 100 * done // total if total else 100
        if pct != state["last"]:
            state["last"] = pct
            bar = "#" * (pct // 4)
            print(f"\rindexing [{bar:<25}] {pct:3d}% {done}/{total}", end="", file=sys.stderr, flush=True)
            if done >= total:
                print(file=sys.stderr)

    return show


def cmd_index(args) -> int:
    engram = _open(args.path)
    summary = engram.index_workspace(progress=_progress_bar(not args.quiet and sys.stderr.isatty()))
    engram.save()
    print(f"indexed {summary.files} files, {summary.chunks} chunks in {summary.seconds:.2f} s "
          f"({summary.encoded_files} re-encoded, {summary.removed_files} removed) -> {engram.store_path}")
    return 0


def _ensure_index(engram) -> None:
    had_store = engram.store_path.exists() and not engram.load_warning
    summary = engram.index_workspace()
    if not had_store or summary.encoded_files or summary.removed_files:
        engram.save()


def _hits_json(hits) -> list[dict]:
    return [{"path": h.path, "start_line": h.start_line, "end_line": h.end_line, "score": h.score, "text": h.text}
            for h in hits]


def _read_query_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise CliError(f"cannot read query file {path}: {e.strerror or e}") from None


def cmd_search(args) -> int:
    if args.k < 1:
        raise CliError("-k must be at least 1")
    given = sum(x is not None for x in (args.query, args.query_file, args.queries_file))
    if given != 1:
        raise CliError("give exactly one of QUERY, --query-file or --queries-file")
    if args.queries_file is not None:
        try:
            lines = args.queries_file.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise CliError(f"cannot read queries file {args.queries_file}: {e.strerror or e}") from None
        batch = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if not isinstance(item, dict) or ("query" not in item and "query_file" not in item):
                    raise ValueError("needs 'query' or 'query_file'")
            except ValueError as e:
                raise CliError(f"{args.queries_file}:{n}: bad query line ({e})") from None
            batch.append(item)
        engram = _open(args.path)
        _ensure_index(engram)
        for item in batch:
            query = item["query"] if "query" in item else _read_query_file(Path(item["query_file"]))
            hits = engram.search(str(query), k=args.k, scope=args.scope)
            print(json.dumps({"id": item.get("id"), "results": _hits_json(hits)}))
        return 0
    query = args.query if args.query is not None else _read_query_file(args.query_file)
    engram = _open(args.path)
    _ensure_index(engram)
    hits = engram.search(query, k=args.k, scope=args.scope)
    if args.json:
        print(json.dumps({"results": _hits_json(hits)}))
    else:
        if not hits:
            print("no results")
        for h in hits:
            first = next((l.strip() for l in h.text.splitlines() if l.strip()), "")
            print(f"{h.score:6.3f}  {h.path}:{h.start_line}-{h.end_line}  {first[:80]}")
    return 0


def cmd_ask(args) -> int:
    try:
        from engram_ls.server.ask import run_ask
    except ImportError as e:
        raise CliError(f"ask is unavailable: {e}") from None
    return run_ask(args)


def cmd_serve(args) -> int:
    from engram_ls.server.app import run_server

    return run_server(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # vscode-languageclient appends --stdio; no sub-command means "serve".
    if not argv or all(a.startswith("-") and a not in ("-h", "--help", "--version") for a in argv):
        argv = ["serve"] + argv
    args = build_parser().parse_args(argv)
    handlers = {"index": cmd_index, "search": cmd_search, "ask": cmd_ask, "serve": cmd_serve}
    try:
        return handlers[args.command](args)
    except CliError as e:
        print(f"engram-ls: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
