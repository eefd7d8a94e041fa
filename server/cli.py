"""The ``engram-ls`` command: ``index``, ``search``, ``ask``, ``complete`` and ``serve`` (the default).

``index`` and ``search`` touch only the retrieval core, so they start fast and never import pygls or model code.
The JSON printed by ``search --json`` is a stable contract used by external benchmarks.

Terminal behaviour: every error is one line ``engram-ls: error: …`` on stderr with exit code 2 (usage, paths,
files) or 1 (a model that could not answer), each cause worded once, here. Ctrl-C (SIGINT) ends any command with
the one line ``engram-ls: interrupted`` and exit code 130; model workers ignore SIGINT and are stopped by this
process (``ask`` closes its pools; a killed server's workers die with it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from importlib import metadata
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
INTERRUPTED = "engram-ls: interrupted"
TTY_HINT = ("engram-ls: this is a language server, waiting for an editor to speak LSP on stdin "
            "(Ctrl-C quits; see engram-ls --help for index, search and ask)")
PUBLIC_BACKENDS = ("llama", "openai")
TEST_BACKENDS = ("stub",)  # accepted for tests, never offered in --help


class CliError(Exception):
    """A one-line error for the user; exits with ``code`` (2 unless said otherwise)."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


# One wording per cause, used by every command.
def no_such_path(path: Path) -> CliError:
    return CliError(f"no such path: {path}")


def not_a_directory(path: Path) -> CliError:
    return CliError(f"not a directory: {path}")


def unreadable(what: str, path: Path, e: OSError) -> CliError:
    return CliError(f"cannot read {what} {path}: {e.strerror or e}")


def check_workspace(path: Path) -> Path:
    """The workspace folder argument of every command: it must exist and be a directory."""
    if not path.exists():
        raise no_such_path(path)
    if not path.is_dir():
        raise not_a_directory(path)
    return path


def _version() -> str:
    try:
        return metadata.version("engram-ls")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _positive(name: str, low: int = 1, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"in {low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {value}")
        return value
    return parse


def _backend(text: str) -> str:
    if text in PUBLIC_BACKENDS or text in TEST_BACKENDS:
        return text
    raise argparse.ArgumentTypeError(f"must be one of {', '.join(PUBLIC_BACKENDS)}, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"engram-ls: error: {message} (see {self.prog} --help)\n")


WORKSPACE_HELP = "the workspace folder (its store lives in engram-ls's cache, not in the folder)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="engram-ls", description="A local, private AI code assistant (LSP). With no command it "
                     "runs the language server on stdin/stdout, for an editor to start.")
    parser.add_argument("--version", action="version", version=f"engram-ls {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{index,search,ask,complete,serve}", parser_class=_Parser)

    p = sub.add_parser("index", help="build or update the engram store of a workspace")
    p.add_argument("path", type=Path, help=WORKSPACE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: a bar on a terminal)")

    p = sub.add_parser("search", help="search a workspace's engrams (builds the store when missing)")
    p.add_argument("path", type=Path, help=WORKSPACE_HELP)
    p.add_argument("query", nargs="?", help="natural-language or code query (or use --query-file / --queries-file)")
    p.add_argument("--query-file", type=Path, help="read the query (e.g. a code snippet) from a file (default: none)")
    p.add_argument("--queries-file", type=Path,
                   help="JSON lines of {id, query | query_file}: one output line each (default: none)")
    p.add_argument("-k", type=_positive("-k"), default=10, help="number of results (default: 10)")
    p.add_argument("--scope", help="folder prefix or glob to search within (default: the whole workspace)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table (default: a table)")

    p = sub.add_parser("ask", help="ask a question about a workspace; the answer streams with citations")
    p.add_argument("path", type=Path, help=WORKSPACE_HELP)
    p.add_argument("question", help="the question, in quotes")
    p.add_argument("--role", choices=["coding", "research"],
                   help="model role (default: routed from the question's wording)")
    p.add_argument("--max-tokens", type=_positive("--max-tokens", 1, 8192), default=384,
                   help="longest answer, in tokens (default: 384)")
    p.add_argument("-k", type=_positive("-k"), default=6, help="snippets retrieved as context (default: 6)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end (default: stream text)")
    p.add_argument("--model-path", type=Path, help="a local GGUF file to use instead of the shipped model "
                   "(default: the shipped Qwen2.5-Coder-0.5B)")
    p.add_argument("--backend", type=_backend, metavar="{llama,openai}",
                   help="inference backend (default: llama, the model run locally)")
    p.add_argument("--url", help="base URL of an OpenAI-compatible server, with --backend openai (default: none)")
    p.add_argument("--stub-delay-ms", type=int, default=0, help=argparse.SUPPRESS)  # test backend only

    p = sub.add_parser("complete", help="batch completions at cursors given as JSON lines, as the editor gets them")
    p.add_argument("path", type=Path, help=WORKSPACE_HELP)
    p.add_argument("--requests-file", type=Path, required=True,
                   help="JSON lines of {id, path (relative to the workspace), prefix, suffix}: the file's unsaved "
                   "buffer is prefix + suffix, the cursor between them")
    p.add_argument("--context", choices=["engram", "none", "given"], default="engram",
                   help="cross-file context from the engrams, none, or each request's own 'snippets' list of "
                   "{path, start_line, end_line, text} (default: engram)")
    p.add_argument("--max-tokens", type=_positive("--max-tokens", 1, 1024), default=48,
                   help="longest completion, in tokens (default: 48, as inline completion)")
    p.add_argument("--one-line", action="store_true", help="stop at the end of the line (default: off)")
    p.add_argument("--similar", type=_positive("--similar", 0, 20), default=3,
                   help="similar-code snippets after the definitions and call sites (default: 3)")
    p.add_argument("--context-length", type=_positive("--context-length", 256, 131072), default=1024,
                   help="tokens of prompt and completion (default: 1024, as inline completion's "
                   "completion.contextTokens)")
    p.add_argument("--suffix-tokens", type=_positive("--suffix-tokens", 0, 131072), default=0,
                   help="most tokens after the cursor in the prompt (default: 0, no cap beyond a quarter of the "
                   "file's room, as inline completion's completion.suffixTokens)")
    p.add_argument("--model-path", help="a local GGUF file or a shipped model's name (default: the shipped "
                   "Qwen2.5-Coder-1.5B with at least 4 cores and the coder-1-5b extra installed, else the 0.5B)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout (the only format; default: on)")
    p.add_argument("--backend", type=_backend, metavar="{llama,openai}",
                   help="inference backend (default: llama, the model run locally)")
    p.add_argument("--url", help="base URL of an OpenAI-compatible server, with --backend openai (default: none)")
    p.add_argument("--stub-delay-ms", type=int, default=0, help=argparse.SUPPRESS)  # test backend only

    p = sub.add_parser("serve", help="run the language server (the default with no command)")
    _serve_args(p)
    return parser


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stdio", action="store_true", help="talk LSP on stdin/stdout (default: on)")
    p.add_argument("--tcp", action="store_true", help="listen on TCP instead, for debugging (default: off)")
    p.add_argument("--host", default="127.0.0.1", help="TCP address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_positive("--port", 1, 65535), default=2087,
                   help="TCP port to listen on (default: 2087)")
    p.add_argument("--log-file", type=Path, help="also write the log to this file (default: stderr only)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log detail on stderr (default: info)")


def _open(path: Path, quiet: bool = True):
    from engram_ls.retrieval import Engram

    engram = Engram.open(check_workspace(path))
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


def skipped_lines(skipped: dict | None) -> list[str]:
    """``skipped N files: 1 binary, 2 too large`` plus, when the walk gave names, one indented line per file.

    ``skipped`` maps a reason to a count or to a list of relative paths (both shapes are accepted)."""
    if not skipped:
        return []
    counts = {reason: (len(v) if isinstance(v, (list, tuple, set)) else int(v)) for reason, v in skipped.items()}
    counts = {r: n for r, n in counts.items() if n}
    if not counts:
        return []
    total = sum(counts.values())
    lines = [f"skipped {total} file{'s' if total != 1 else ''}: "
             + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))]
    for reason, value in sorted(skipped.items()):
        if isinstance(value, (list, tuple, set)):
            lines += [f"  {reason}: {p}" for p in sorted(value)]
    return lines


def secret_files(engram) -> list[str]:
    """The secret-bearing files the walk left out (``.env``, keys…): found by a second walk that lets them in.
    (The walk itself does not record them; counting them there would save this walk.)"""
    from dataclasses import replace

    from engram_ls.retrieval.store import cache_root
    from engram_ls.retrieval.walk import is_secret_path, walk_files

    if engram.settings.include_secrets:
        return []
    loose = replace(engram.settings, include_secrets=True)
    return [p for p in walk_files(engram.root, loose, skip=(cache_root(),)) if is_secret_path(p)]


def cmd_index(args) -> int:
    engram = _open(args.path)
    summary = engram.index_workspace(progress=_progress_bar(not args.quiet and sys.stderr.isatty()))
    engram.save()
    print(f"indexed {summary.files} files, {summary.chunks} chunks in {summary.seconds:.2f} s "
          f"({summary.encoded_files} re-encoded, {summary.removed_files} removed) -> {engram.store_path}")
    skipped = dict(getattr(summary, "skipped", None) or {})
    if "secret" not in skipped:
        secrets = secret_files(engram)
        if secrets:
            skipped["secret"] = secrets
    for line in skipped_lines(skipped):
        print(line)
    return 0


def ensure_index(engram):
    had_store = engram.store_path.exists() and not engram.load_warning
    summary = engram.index_workspace()
    if not had_store or summary.encoded_files or summary.removed_files:
        engram.save()
    return summary


_ensure_index = ensure_index


def _hits_json(hits) -> list[dict]:
    return [{"path": h.path, "start_line": h.start_line, "end_line": h.end_line, "score": h.score, "text": h.text}
            for h in hits]


def read_text(path: Path, what: str, errors: str = "strict") -> str:
    """The UTF-8 text of a file the user named, which may be a pipe (``<(…)``) nobody has written to yet. Ctrl-C
    ends the command even then: SIGINT goes to the watcher thread while this one waits in open or read. (Without it
    a SIGINT landing between Python's last check for signals and the blocking read() was seen only when the read
    returned: the named-pipe test hung 3 runs in 40 under load.) Unreadable, or not UTF-8: a usage error."""
    try:
        with SigintWatcher(exit_interrupted):
            return path.read_text(encoding="utf-8", errors=errors)
    except OSError as e:
        raise unreadable(what, path, e) from None
    except UnicodeDecodeError as e:
        raise CliError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _read_query_file(path: Path) -> str:
    return read_text(path, "query file", errors="replace")


def cmd_search(args) -> int:
    given = sum(x is not None for x in (args.query, args.query_file, args.queries_file))
    if given != 1:
        raise CliError("give exactly one of QUERY, --query-file or --queries-file")
    if args.query is not None and not args.query.strip():
        raise CliError("the query is empty")
    check_workspace(args.path)
    if args.queries_file is not None:
        lines = read_text(args.queries_file, "queries file").splitlines()
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
        ensure_index(engram)
        for item in batch:
            query = item["query"] if "query" in item else _read_query_file(Path(item["query_file"]))
            hits = engram.search(str(query), k=args.k, scope=args.scope)
            print(json.dumps({"id": item.get("id"), "results": _hits_json(hits)}))
        return 0
    query = args.query if args.query is not None else _read_query_file(args.query_file)
    engram = _open(args.path)
    ensure_index(engram)
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
    check_workspace(args.path)
    if not args.question.strip():
        raise CliError("the question is empty")
    try:
        from engram_ls.server.ask import run_ask
    except ImportError as e:
        raise CliError(f"ask is unavailable: {e}", EXIT_FAILED) from None
    return run_ask(args)


def cmd_complete(args) -> int:
    check_workspace(args.path)
    try:
        from engram_ls.server.batch_complete import run_complete
    except ImportError as e:
        raise CliError(f"complete is unavailable: {e}", EXIT_FAILED) from None
    return run_complete(args)


def exit_interrupted(*_) -> None:
    """One line, exit 130 at once (no unwinding: nothing is left to print a traceback)."""
    try:
        os.write(2, (INTERRUPTED + "\n").encode())
    finally:
        os._exit(EXIT_INTERRUPTED)


class SigintWatcher:
    """Ctrl-C handled in one place while SIGINT is blocked in the calling thread.

    Child processes inherit the signal mask of the thread that starts them, so model workers started inside this
    block never receive the terminal's SIGINT, not even while their interpreter is still starting (before any
    handler of theirs exists). The parent notices the signal either in the watcher thread (``sigwait``) or, when
    the kernel hands it to a thread that does not block it (numba's, OpenBLAS'), through Python's handler; both
    call ``on_interrupt(n)`` for the n-th Ctrl-C."""

    def __init__(self, on_interrupt):
        self.on_interrupt = on_interrupt
        self._done = False
        self._count = 0
        self._lock = None
        self._thread = None
        self._previous = None

    def _fire(self) -> None:
        with self._lock:
            self._count += 1
            n = self._count
        self.on_interrupt(n)

    def _watch(self) -> None:
        while True:
            signal.sigwait({signal.SIGINT})
            if self._done:
                return
            self._fire()

    def __enter__(self) -> "SigintWatcher":
        import threading

        self._lock = threading.Lock()
        self._previous = signal.signal(signal.SIGINT, lambda signum, frame: self._fire())
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        self._thread = threading.Thread(target=self._watch, name="sigint", daemon=True)  # inherits the mask
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done = True
        signal.pthread_kill(self._thread.ident, signal.SIGINT)  # wakes the watcher, which sees _done and ends
        self._thread.join()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, self._previous)


def cmd_serve(args) -> int:
    """SIGINT while serving: one line, exit 130 at once. The event loop and pygls' stdin reader cannot be
    unwound cleanly from a blocked read; the workers never see the signal and die with this process (pipe EOF
    and PR_SET_PDEATHSIG)."""
    signal.signal(signal.SIGINT, exit_interrupted)  # until the watcher takes over, and for a SIGINT sent to it
    if not args.tcp and sys.stdin.isatty():
        print(TTY_HINT, file=sys.stderr, flush=True)
    with SigintWatcher(exit_interrupted):
        from engram_ls.server.app import run_server

        return run_server(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # vscode-languageclient appends --stdio; no sub-command means "serve".
    if not argv or all(a.startswith("-") and a not in ("-h", "--help", "--version") for a in argv):
        argv = ["serve"] + argv
    handlers = {"index": cmd_index, "search": cmd_search, "ask": cmd_ask, "complete": cmd_complete,
                "serve": cmd_serve}
    try:
        args = build_parser().parse_args(argv)
        return handlers[args.command](args)
    except CliError as e:
        print(f"engram-ls: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C during exit prints nothing more
        try:
            if sys.stdout.isatty():  # end the half-streamed answer's line
                sys.stdout.write("\n")
                sys.stdout.flush()
        except (ValueError, OSError):
            pass
        print(INTERRUPTED, file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    # Run the importable module's main (not this __main__ copy), so that CliError is one class for every module.
    from engram_ls.server.cli import main as _main

    sys.exit(_main())
