"""The worker process itself, driven over its real pipes."""

import os
import subprocess
import sys

import pytest

from engram_ls.inference.protocol import encode, read_frame


@pytest.fixture
def worker():
    proc = subprocess.Popen([sys.executable, "-m", "engram_ls.inference.worker", "--backend", "stub",
                             "--stub-delay-ms", "20"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    yield proc
    proc.kill()
    proc.wait()


def send(proc, msg):
    proc.stdin.write(encode(msg))
    proc.stdin.flush()


def frames_until_end(proc, rid):
    out = []
    while True:
        f = read_frame(proc.stdout)
        out.append(f)
        if f.get("id") == rid and f["type"] in ("done", "error"):
            return out


def test_hello_then_streamed_generation(worker):
    hello = read_frame(worker.stdout)
    assert hello["type"] == "hello" and hello["protocol"] == 1 and hello["fim"] is True
    send(worker, {"type": "generate", "id": "g1", "mode": "prompt", "prompt": "hi", "max_tokens": 3})
    frames = frames_until_end(worker, "g1")
    assert [f["type"] for f in frames] == ["token", "token", "token", "done"]
    assert frames[-1]["text"] == "".join(f["text"] for f in frames[:-1])
    assert frames[-1]["finish"] == "length" and frames[-1]["usage"]["completion_tokens"] == 3


def test_bad_frames_get_errors_and_the_worker_lives_on(worker):
    read_frame(worker.stdout)
    worker.stdin.write(len(b"\xc1").to_bytes(4, "big") + b"\xc1")
    worker.stdin.flush()
    assert read_frame(worker.stdout)["code"] == "bad_frame"
    send(worker, {"type": "teleport"})
    assert read_frame(worker.stdout)["code"] == "unknown_type"
    send(worker, {"type": "generate", "id": 5})
    assert read_frame(worker.stdout)["code"] == "bad_request"
    send(worker, {"type": "generate", "id": "g", "mode": "prompt", "max_tokens": 1})  # no prompt
    assert read_frame(worker.stdout)["code"] == "bad_request"
    send(worker, {"type": "generate", "id": "ok", "mode": "prompt", "prompt": "x", "max_tokens": 1})
    assert frames_until_end(worker, "ok")[-1]["type"] == "done"


def test_ping_and_cancel_are_answered_during_generation(worker):
    read_frame(worker.stdout)
    send(worker, {"type": "generate", "id": "long", "mode": "prompt", "prompt": "x", "max_tokens": 2000})
    assert read_frame(worker.stdout)["type"] == "token"
    send(worker, {"type": "ping", "seq": 7})
    send(worker, {"type": "generate", "id": "second", "mode": "prompt", "prompt": "x", "max_tokens": 1})
    send(worker, {"type": "cancel", "id": "long"})
    seen = []
    while True:
        f = read_frame(worker.stdout)
        seen.append(f)
        if f["type"] == "done":
            break
    pong = next(f for f in seen if f["type"] == "pong")
    assert pong["seq"] == 7 and pong["busy"] == "long"
    assert any(f["type"] == "error" and f["id"] == "second" and f["code"] == "busy" for f in seen)
    assert seen[-1]["finish"] == "cancelled" and seen[-1]["usage"]["completion_tokens"] < 2000


def test_deadline_stops_generation(worker):
    read_frame(worker.stdout)
    send(worker, {"type": "generate", "id": "d", "mode": "prompt", "prompt": "x", "max_tokens": 5000,
                  "deadline": 0.2})
    assert frames_until_end(worker, "d")[-1]["finish"] == "deadline"


def test_worker_exits_when_its_stdin_closes(worker):
    read_frame(worker.stdout)
    worker.stdin.close()
    assert worker.wait(timeout=30) == 0


def test_protocol_stream_is_not_polluted_by_prints():
    """Output written to fd 1 by C code (os.write) or Python (print) inside the worker goes to stderr, and the
    frames on stdout stay intact."""
    proc = subprocess.Popen([sys.executable, "-c",
                             "import os, sys; from engram_ls.inference import worker\n"
                             "orig = worker.Worker.run\n"
                             "def run(self):\n"
                             "    os.write(1, b'NOISE_FROM_C\\n')\n"
                             "    print('NOISE_FROM_PRINT', flush=True)\n"
                             "    orig(self)\n"
                             "worker.Worker.run = run\n"
                             "sys.exit(worker.main(['--backend', 'stub']))"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert read_frame(proc.stdout)["type"] == "hello"
        send(proc, {"type": "generate", "id": "a", "mode": "prompt", "prompt": "x", "max_tokens": 2})
        frames = frames_until_end(proc, "a")
        assert [f["type"] for f in frames] == ["token", "token", "done"]
        proc.stdin.close()  # the worker exits on EOF
        assert proc.wait(timeout=30) == 0
        rest, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert rest == b""  # nothing but frames on stdout
    assert b"NOISE_FROM_C" in err and b"NOISE_FROM_PRINT" in err  # the noise went where the worker points it


def test_frames_larger_than_a_pipe_buffer(worker):
    """A 1 MB prompt arrives in many partial reads; the worker must assemble it, not take it for EOF."""
    read_frame(worker.stdout)
    big = "x = 1\n" * 200_000
    send(worker, {"type": "generate", "id": "big", "mode": "fim", "prefix": big, "suffix": big, "max_tokens": 2})
    frames = frames_until_end(worker, "big")
    assert frames[-1]["type"] == "done" and worker.poll() is None


def test_a_fim_budget_bounds_the_prompt_and_a_tiny_one_is_refused(worker):
    read_frame(worker.stdout)
    long_prefix = "".join(f"value_{i} = compute({i})\n" for i in range(400))

    def prompt_tokens(rid, **extra):
        send(worker, {"type": "generate", "id": rid, "mode": "fim", "prefix": long_prefix, "suffix": "\n",
                      "max_tokens": 2, **extra})
        done = frames_until_end(worker, rid)[-1]
        assert done["type"] == "done", done
        return done["usage"]["prompt_tokens"]

    whole, bounded = prompt_tokens("whole"), prompt_tokens("bounded", budget=300)
    assert bounded <= 300 < whole
    send(worker, {"type": "generate", "id": "tiny", "mode": "fim", "prefix": "x", "max_tokens": 1, "budget": 8})
    error = frames_until_end(worker, "tiny")[-1]
    assert error["type"] == "error" and error["code"] == "bad_request" and "budget" in error["message"]


def test_a_fim_suffix_budget_bounds_the_text_after_the_cursor_and_a_bad_one_is_refused(worker):
    read_frame(worker.stdout)
    long_suffix = "".join(f"value_{i} = compute({i})\n" for i in range(100))

    def prompt_tokens(rid, **extra):
        send(worker, {"type": "generate", "id": rid, "mode": "fim", "prefix": "x = ", "suffix": long_suffix,
                      "max_tokens": 2, **extra})
        done = frames_until_end(worker, rid)[-1]
        assert done["type"] == "done", done
        return done["usage"]["prompt_tokens"]

    whole, bounded = prompt_tokens("whole"), prompt_tokens("bounded", suffix_budget=20)
    assert bounded <= 20 + prompt_tokens("none", suffix="") < whole
    assert prompt_tokens("uncapped", suffix_budget=0) == whole
    for bad in (-1, "64", True):
        send(worker, {"type": "generate", "id": "bad", "mode": "fim", "prefix": "x", "suffix": long_suffix,
                      "max_tokens": 1, "suffix_budget": bad})
        error = frames_until_end(worker, "bad")[-1]
        assert error["type"] == "error" and error["code"] == "bad_request" and "suffix_budget" in error["message"]


def test_an_outline_too_big_for_the_budget_goes_in_cut_to_its_best_ranked_lines(worker):
    read_frame(worker.stdout)
    members = [f"    def method_{i}(self, argument_{i}, other_{i}=None):" for i in range(60)]
    outline = {"path": "pkg/big.py", "start_line": 1, "end_line": 300, "text": "\n".join(["class Big:"] + members)}
    ranked = dict(outline, priority=[0] + list(range(60, 0, -1)))  # the last member ranks first

    def cited(rid, snippet):
        send(worker, {"type": "generate", "id": rid, "mode": "fim", "prefix": "big.", "suffix": "\n",
                      "max_tokens": 2, "budget": 300, "snippets": [snippet]})
        done = frames_until_end(worker, rid)[-1]
        assert done["type"] == "done", done
        return done["cited"], done["usage"]["prompt_tokens"]

    assert cited("whole", outline)[0] == []  # all or nothing: it does not fit 300 tokens
    got, tokens = cited("cut", ranked)
    assert got == [0] and tokens <= 300


def test_a_malformed_snippet_priority_is_a_clear_error_and_the_worker_lives_on(worker):
    read_frame(worker.stdout)
    for bad in ("0 1", [0, "1"], [0, True], 7):
        send(worker, {"type": "generate", "id": "bad", "mode": "fim", "prefix": "x.", "max_tokens": 1,
                      "snippets": [{"path": "a.py", "start_line": 1, "end_line": 2, "text": "a\nb", "priority": bad}]})
        error = frames_until_end(worker, "bad")[-1]
        assert error["type"] == "error" and error["code"] == "bad_request" and "priority" in error["message"]
    send(worker, {"type": "generate", "id": "ok", "mode": "prompt", "prompt": "x", "max_tokens": 1})
    assert frames_until_end(worker, "ok")[-1]["type"] == "done"
