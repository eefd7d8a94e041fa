"""A model worker process: ``python -m engram_ls.inference.worker --backend llama --model PATH ...``.

Speaks the protocol of ``protocol.py`` on stdin/stdout and logs only to stderr (C-level output included: fd 1 is
re-pointed at stderr, the protocol keeps a private copy). A reader thread handles control frames — ``cancel`` and
``ping`` are answered even while a generation runs — and the main thread generates one request at a time. The
worker exits when its stdin closes, and the kernel kills it if its parent dies, so no orphan survives the editor.
SIGINT is ignored: a terminal's Ctrl-C is for the parent, which stops its workers.
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # First thing: Ctrl-C in a terminal reaches the whole foreground process group, workers included. A worker
    # never handles it (no KeyboardInterrupt traceback); its parent stops it (shutdown frame, pipe EOF, or
    # PR_SET_PDEATHSIG when the parent dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

import argparse
import ctypes
import logging
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import fields

from . import prompts
from .backends import BACKENDS, BackendError
from .protocol import PROTOCOL_VERSION, ProtocolError, encode, error_frame, read_frame
from .settings import SamplingSettings

log = logging.getLogger("engram_ls.worker")


def parse_sampling(value) -> SamplingSettings:
    """The request's repetition controls (missing: llama.cpp's neutral values); a wrong key or value is a
    ``bad_request``, not a silently different sampler."""
    if value is None:
        return SamplingSettings()
    if not isinstance(value, dict):
        raise ValueError("'sampling' must be a map")
    known = {f.name for f in fields(SamplingSettings)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"unknown sampling field(s): {', '.join(map(str, unknown))}")
    sampling = SamplingSettings(**value)
    problems = sampling.problems("sampling.")
    if problems:
        raise ValueError("; ".join(problems))
    return sampling


def _suffix_budget(req: dict) -> int | None:
    value = req.get("suffix_budget")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("suffix_budget must be a whole number of tokens, 0 or more")
    return value


def _priority(snippet: dict) -> tuple[int, ...]:
    """A snippet's line priorities (``prompts.Snippet.priority``): absent, or a list of whole numbers."""
    value = snippet.get("priority") or ()
    if not isinstance(value, (list, tuple)) or any(isinstance(p, bool) or not isinstance(p, int) for p in value):
        raise ValueError("a snippet's 'priority' must be a list of whole numbers, one per line of its text")
    return tuple(value)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Worker:
    def __init__(self, backend, out, role: str):
        self.backend = backend
        self.out = out
        self.role = role
        self.jobs: queue.Queue = queue.Queue()
        self.write_lock = threading.Lock()
        self.current: str | None = None
        self.stop_event = threading.Event()

    def send(self, message: dict) -> None:
        data = encode(message)
        with self.write_lock:
            try:
                self.out.write(data)
                self.out.flush()
            except (BrokenPipeError, ConnectionError):
                # The parent is gone (e.g. Ctrl-C while this worker was still starting, before PR_SET_PDEATHSIG
                # could take effect): nobody is left to read a traceback.
                os._exit(0)

    # -- reader thread --------------------------------------------------------------------------------------------
    def read_loop(self, stdin) -> None:
        while True:
            try:
                frame = read_frame(stdin)
            except ProtocolError as e:
                if e.fatal:
                    log.debug("stdin closed: exiting")
                    os._exit(0)
                self.send(error_frame(None, "bad_frame", str(e)))
                continue
            kind = frame["type"]
            if kind == "ping":
                self.send({"type": "pong", "seq": frame.get("seq"), "busy": self.current})
            elif kind == "cancel":
                if frame.get("id") is not None and frame.get("id") == self.current:
                    self.stop_event.set()
            elif kind in ("generate", "tokenize"):
                if not isinstance(frame.get("id"), str):
                    self.send(error_frame(frame.get("id"), "bad_request", "'id' must be a string"))
                elif kind == "generate" and (self.current is not None or not self.jobs.empty()):
                    self.send(error_frame(frame["id"], "busy", f"already generating {self.current}"))
                else:
                    self.jobs.put(frame)
            elif kind == "shutdown":
                self.stop_event.set()
                self.jobs.put(None)
                return
            else:
                self.send(error_frame(frame.get("id"), "unknown_type", f"unknown frame type {kind!r}"))

    # -- main thread ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                if job["type"] == "tokenize":
                    reply = {"type": "tokens", "id": job["id"], "count": self.backend.count(str(job.get("text", "")))}
                else:
                    reply = self.generate(job)
            except BackendError as e:
                reply = error_frame(job["id"], e.code, str(e))
            except (KeyError, TypeError, ValueError) as e:
                reply = error_frame(job["id"], "bad_request", f"{type(e).__name__}: {e}")
            except Exception as e:  # the worker lives on; the caller gets a clear error
                log.error("generation failed:\n%s", traceback.format_exc())
                reply = error_frame(job["id"], "internal", f"{type(e).__name__}: {e}")
            # Free before replying: the parent may send the next request the moment it reads the reply.
            self.current = None
            self.stop_event.clear()
            self.send(reply)

    def generate(self, req: dict) -> dict:
        rid = req["id"]
        started = time.monotonic()
        deadline = started + float(req["deadline"]) if req.get("deadline") else None
        max_tokens = int(req.get("max_tokens", 128))
        if not 1 <= max_tokens <= 8192:
            raise ValueError("max_tokens must be in 1..8192")
        temperature = float(req.get("temperature", 0.0))
        stop = [str(s) for s in req.get("stop") or []]
        sampling = parse_sampling(req.get("sampling"))
        snippets = [prompts.Snippet(str(s["path"]), int(s["start_line"]), int(s["end_line"]), str(s["text"]),
                                    _priority(s))
                    for s in req.get("snippets") or []]
        mode = req.get("mode", "prompt")
        count = self.backend.count
        n_ctx = self.backend.n_ctx
        if req.get("budget") is not None:  # a completion's own prompt budget (prompt reading is its latency)
            budget = int(req["budget"])
            if budget < 64:
                raise ValueError("budget must be at least 64 tokens")
            n_ctx = min(n_ctx, budget)
        cited: list[int] = []
        text: list[str] = []
        halt = self._should_stop(deadline)
        if req.get("inline_stop"):
            plain, after = halt, str(req.get("suffix", ""))
            halt = lambda: plain() or prompts.suggestion_ended("".join(text), after)  # noqa: E731
        self.current = rid
        if mode == "fim":
            if not self.backend.fim:
                raise BackendError("this model has no fill-in-the-middle tokens", "bad_request")
            prompt, cited = prompts.fim_prompt(str(req["prefix"]), str(req.get("suffix", "")), snippets,
                                               path=str(req.get("path", "")), repo=str(req.get("repo", "workspace")),
                                               n_ctx=n_ctx, max_tokens=max_tokens, count=count,
                                               suffix_tokens=_suffix_budget(req))
            pieces = self.backend.stream_prompt(prompt, max_tokens, temperature, prompts.FIM_STOPS + stop, halt,
                                                sampling)
            prompt_tokens = count(prompt)
        elif mode == "chat":
            if req.get("messages"):
                messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in req["messages"]]
            else:
                messages, cited = prompts.chat_messages(str(req["question"]), snippets,
                                                        role=str(req.get("role") or self.role),
                                                        system=req.get("system"), n_ctx=n_ctx,
                                                        max_tokens=max_tokens, count=count)
            pieces = self.backend.stream_chat(messages, max_tokens, temperature, stop, halt, sampling)
            prompt_tokens = sum(count(m["content"]) for m in messages)
        elif mode == "prompt":
            prompt = str(req["prompt"])
            pieces = self.backend.stream_prompt(prompt, max_tokens, temperature, stop, halt, sampling)
            prompt_tokens = count(prompt)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        n, first = 0, None
        stream = bool(req.get("stream", True))
        for piece in pieces:
            if first is None:
                first = time.monotonic()
            text.append(piece)
            n += 1
            if stream:
                self.send({"type": "token", "id": rid, "text": piece})
            if halt():
                break
        if self.stop_event.is_set():
            finish = "cancelled"
        elif deadline and time.monotonic() > deadline:
            finish = "deadline"
        else:
            finish = "length" if n >= max_tokens else "stop"
        end = time.monotonic()
        return {"type": "done", "id": rid, "text": "".join(text), "finish": finish, "cited": cited,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n},
                "timings": {"ttft_ms": round(((first or end) - started) * 1000, 2),
                            "total_ms": round((end - started) * 1000, 2)}}

    def _should_stop(self, deadline):
        return lambda: self.stop_event.is_set() or (deadline is not None and time.monotonic() > deadline)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="engram_ls.inference.worker")
    p.add_argument("--backend", default="llama", choices=sorted(BACKENDS))
    p.add_argument("--model", default="")
    p.add_argument("--role", default="coding")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-threads", type=int, default=0, help="threads reading a prompt (0: --threads)")
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--cache-mb", type=int, default=128)
    p.add_argument("--gpu-layers", type=int, default=0)
    p.add_argument("--url", default="")
    p.add_argument("--remote-model", default="")
    p.add_argument("--api-key-env", default="")
    p.add_argument("--stub-delay-ms", type=int, default=0)
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # also when started through main() rather than ``-m``
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format=f"[worker {os.getpid()} {args.role}] %(levelname)s %(message)s")
    _die_with_parent()
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed by C code goes to stderr, never into the protocol stream
    sys.stdout = sys.stderr
    stdin = os.fdopen(os.dup(0), "rb", buffering=0)
    try:
        backend = BACKENDS[args.backend](model=args.model, n_ctx=args.ctx, threads=args.threads,
                                         batch_threads=args.batch_threads, batch=args.batch,
                                         cache_mb=args.cache_mb, gpu_layers=args.gpu_layers, url=args.url,
                                         remote_model=args.remote_model, api_key_env=args.api_key_env, delay_ms=args.stub_delay_ms)
    except Exception as e:
        log.error("cannot start backend: %s", e)
        out.write(encode(error_frame(None, "model_error", f"cannot start {args.backend} backend: {e}")))
        return 3
    worker = Worker(backend, out, args.role)
    worker.send({"type": "hello", "protocol": PROTOCOL_VERSION, "model": backend.model_name, "n_ctx": backend.n_ctx,
                 "chat_template": backend.chat_template, "fim": backend.fim, "backend": args.backend,
                 "pid": os.getpid(), "role": args.role, "gpu_layers": getattr(backend, "gpu_layers", 0)})
    threading.Thread(target=worker.read_loop, args=(stdin,), daemon=True, name="reader").start()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
