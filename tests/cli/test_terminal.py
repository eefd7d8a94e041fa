"""The CLI in a real terminal: Ctrl-C typed into a pty ends every command with one line and exit code 130, no
traceback and no worker left behind; bare ``engram-ls`` on a terminal says it is a language server."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.retrieval.conftest import make_workspace

from .tty import CTRL_C, EXE, Terminal, children, wait_gone

INTERRUPTED = "engram-ls: interrupted"


def env_for(tmp_path, **extra):
    return dict(os.environ, ENGRAM_LS_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1", **extra)


def assert_clean_interrupt(text: str) -> None:
    assert "Traceback" not in text and "KeyboardInterrupt" not in text and "Fatal Python error" not in text, text
    assert text.count(INTERRUPTED) == 1, text


@pytest.mark.parametrize("argv", [[], ["--stdio"], ["serve"]])
def test_bare_engram_ls_on_a_tty_says_it_waits_for_an_editor_and_ctrl_c_stops_it(tmp_path, argv):
    term = Terminal([EXE, *argv], env_for(tmp_path))
    try:
        term.wait_for(lambda t: "\n" in t.stderr)
        hint = term.stderr.splitlines()[0]
        assert "language server" in hint and "editor" in hint and "--help" in hint
        term.type(CTRL_C)
        assert term.wait() == 130
        lines = term.stderr.strip().splitlines()
        assert lines == [hint, INTERRUPTED], term.stderr
    finally:
        term.close()


def test_serving_an_editor_prints_no_hint(tmp_path):
    """With stdin a pipe (an editor), the server says nothing on stderr before the first request."""
    proc = subprocess.Popen([str(EXE), "--stdio", "--log-level", "warning"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(tmp_path))
    _, err = proc.communicate(b"", timeout=60)  # EOF at once: the server exits
    assert b"waiting for an editor" not in err


def many_files(root, n=1500):
    for i in range(n):
        p = root / f"pkg{i % 30}" / f"mod{i}.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"def function_{i}_{j}(value_{j}):\n    return value_{j} * {j} + {i}\n\n\n"
                             for j in range(20)))
    return root


def test_ctrl_c_during_index(tmp_path):
    ws = many_files(tmp_path / "ws")
    term = Terminal([EXE, "index", ws], env_for(tmp_path), stderr_on_tty=True)
    try:
        # The progress bar shows the walk has started and is not finished.
        term.wait_for(lambda t: "indexing [" in t.output and "100%" not in t.output)
        term.type(CTRL_C)
        assert term.wait() == 130
        assert_clean_interrupt(term.output)
        assert term.output.rstrip().endswith(INTERRUPTED)
        assert "indexed " not in term.output
    finally:
        term.close()


def test_ctrl_c_during_ask_ends_with_one_line_and_stops_the_workers(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    trace = tmp_path / "frames.jsonl"
    term = Terminal([EXE, "ask", ws, "How do we download a web page?", "--backend", "stub",
                     "--stub-delay-ms", "100", "--max-tokens", "2000"],
                    env_for(tmp_path, ENGRAM_LS_TRACE_FRAMES=str(trace)))
    try:
        term.wait_for(lambda t: "stub_" in t.output)  # the answer is streaming
        workers = children(term.proc.pid)
        assert len(workers) == 2, workers  # one coding and one research worker
        term.type(CTRL_C)  # SIGINT for the whole foreground group: the command and both workers
        assert term.wait() == 130
        assert_clean_interrupt(term.stderr)
        assert term.stderr.strip().splitlines()[-1] == INTERRUPTED
        assert wait_gone(workers) == []
        frames = [json.loads(l)["type"] for l in trace.read_text().splitlines()]
        assert "shutdown" in frames  # the parent stopped its workers
    finally:
        term.close()


def test_ctrl_c_during_search_blocked_on_a_named_pipe(tmp_path):
    """``--queries-file <(…)`` is a named pipe: search waits for its writer, and Ctrl-C still ends it."""
    ws = make_workspace(tmp_path / "ws")
    fifo = tmp_path / "queries.jsonl"
    os.mkfifo(fifo)
    term = Terminal([EXE, "search", ws, "--queries-file", fifo, "--json"], env_for(tmp_path))
    try:
        deadline = time.monotonic() + 120
        writer = None
        while writer is None:  # opening for writing succeeds only once search has the pipe open for reading
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert time.monotonic() < deadline and term.proc.poll() is None, term.stderr
                time.sleep(0.01)  # polling a condition with a bound
        term.type(CTRL_C)
        assert term.wait_or_describe() == 130
        assert term.stderr.strip() == INTERRUPTED, term.stderr
        os.close(writer)
    finally:
        term.close()


@pytest.mark.model
def test_ctrl_c_during_ask_with_the_shipped_model(tmp_path):
    """The issue's case: llama.cpp workers streaming an answer, Ctrl-C typed once."""
    ws = make_workspace(tmp_path / "ws")
    term = Terminal([EXE, "ask", ws, "Explain how apply_discount computes the price", "--max-tokens", "300"],
                    env_for(tmp_path))
    try:
        term.wait_for(lambda t: len(t.output.strip()) > 20, timeout=600)  # the model is streaming its answer
        workers = children(term.proc.pid)
        assert len(workers) == 2
        term.type(CTRL_C)
        assert term.wait(120) == 130
        assert_clean_interrupt(term.stderr)
        assert term.stderr.strip().splitlines()[-1] == INTERRUPTED
        assert "Sources:" not in term.output
        assert wait_gone(workers) == []
    finally:
        term.close()


def test_ctrl_c_while_the_workers_are_still_starting(tmp_path):
    """The moment a worker process exists its interpreter is still starting, long before any handler of its own:
    the signal must not reach it at all (it is blocked in the thread that starts the workers)."""
    ws = make_workspace(tmp_path / "ws")
    for _ in range(3):
        term = Terminal([EXE, "ask", ws, "How do we download a web page?", "--backend", "stub"], env_for(tmp_path))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not children(term.proc.pid):
                time.sleep(0.002)  # polling a condition with a bound
            workers = children(term.proc.pid)
            assert workers
            term.type(CTRL_C)
            assert term.wait() == 130
            assert_clean_interrupt(term.stderr)
            assert term.stderr.strip() == INTERRUPTED, term.stderr
            assert wait_gone(workers) == []
        finally:
            term.close()


def lsp(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def test_sigint_stops_the_server_and_its_workers(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    proc = subprocess.Popen([str(EXE), "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(tmp_path))
    try:
        proc.stdin.write(lsp({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": os.getpid(), "rootUri": ws.as_uri(), "capabilities": {},
            "initializationOptions": {"backend": {"kind": "stub"}}}}))
        proc.stdin.write(lsp({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        proc.stdin.flush()
        deadline = time.monotonic() + 120
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:  # the workers are warmed after `initialized`
            workers = children(proc.pid)
            time.sleep(0.05)  # polling a condition with a bound
        assert len(workers) >= 2, workers
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130
        text = err.decode(errors="replace")
        assert_clean_interrupt(text)
        assert text.strip().splitlines()[-1] == INTERRUPTED
        assert wait_gone(workers) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
