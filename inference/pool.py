"""Worker pools: processes of one model role, fed from one fair FIFO queue, watched by heartbeats.

A worker that exits, or stops answering pings for ``hang_timeout_s`` (e.g. SIGSTOP), is killed and restarted with
exponential backoff; the request it was serving goes back to the caller's failure policy (retry elsewhere, then
fall back to the other pool, then a clear error). A pool never runs more than ``size`` processes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import sys
import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Callable

from .protocol import ProtocolError, encode, read_frame_async

log = logging.getLogger("engram_ls.inference")


# Diagnostics: ENGRAM_LS_TRACE_FRAMES=<file> appends every frame sent to a worker as a JSON line (used by the
# privacy tests to prove that no secret ever reaches a model).
TRACE_FRAMES = os.environ.get("ENGRAM_LS_TRACE_FRAMES", "")


def _trace(frame: dict) -> None:
    with open(TRACE_FRAMES, "a", encoding="utf-8") as f:
        f.write(json.dumps(frame, default=str) + "\n")


class WorkerFailed(Exception):
    """The worker serving a request died or hung."""


@dataclass
class Request:
    """One generation request as it moves through queues, workers and retries."""

    id: str
    frame: dict
    on_token: Callable[[str], None] | None = None
    future: asyncio.Future | None = None
    attempts: int = 0
    pools_tried: list[str] = field(default_factory=list)
    delivered: int = 0          # characters already streamed to the caller (a retry skips them)
    produced: int = 0           # characters produced by the current attempt
    cancelled: bool = False
    worker: "Worker | None" = None
    retried: bool = False

    def emit(self, piece: str) -> None:
        start = self.produced
        self.produced += len(piece)
        if self.on_token is None or self.produced <= self.delivered:
            return
        fresh = piece[max(0, self.delivered - start):]
        self.delivered = self.produced
        try:
            self.on_token(fresh)
        except Exception:  # a broken callback must not break the pool
            log.exception("on_token callback failed")


_started: "weakref.WeakValueDictionary[int, asyncio.subprocess.Process]" = weakref.WeakValueDictionary()


async def reap_workers() -> None:
    """Kills and reaps every worker process this event loop started that is still running or unreaped: none may
    outlive the loop (asyncio's child watcher would print to the terminal after it closed). The last step of a CLI
    command's loop, after an interrupt above all; it also reaps children the watcher waits for that no Process
    holds yet (a start cancelled inside create_subprocess_exec)."""
    loop = asyncio.get_running_loop()
    for proc in list(_started.values()):
        if getattr(proc, "_loop", loop) is not loop:
            continue
        if proc.returncode is None:
            _kill(proc.pid)
        await proc.wait()
    waiting = _watcher_threads()
    for pid in waiting:
        _kill(pid)
    for thread in waiting.values():
        await loop.run_in_executor(None, thread.join, 10)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _watcher_threads() -> dict:
    """pid -> the thread of asyncio's default child watcher (Python 3.8-3.11) still waiting for that child; empty
    where children are watched otherwise (3.12 and later: pidfds on the loop)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            watcher = asyncio.get_child_watcher()
        except (AttributeError, NotImplementedError, RuntimeError):
            return {}
    return dict(getattr(watcher, "_threads", None) or {})


class Worker:
    """One worker process and the reader task that routes its frames."""

    _ids = itertools.count(1)

    def __init__(self, pool: "Pool"):
        self.pool = pool
        self.number = next(self._ids)
        self.proc: asyncio.subprocess.Process | None = None
        self.hello: dict = {}
        self.request: Request | None = None
        self.last_pong = time.monotonic()
        self.served = 0
        self.alive = False
        self._reader: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        cmd = [sys.executable, "-m", "engram_ls.inference.worker", *self.pool.worker_args]
        self.proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
            limit=1 << 24)
        _started[self.proc.pid] = self.proc
        try:
            frame = await asyncio.wait_for(read_frame_async(self.proc.stdout), self.pool.startup_timeout)
        except (asyncio.TimeoutError, ProtocolError) as e:
            await self.stop()
            raise WorkerFailed(f"{self.pool.role} worker did not start: {e or 'timeout'}") from None
        except BaseException:  # cancelled (Ctrl-C) while starting: reap it before the event loop closes
            await self.stop()
            raise
        if frame.get("type") != "hello":
            await self.stop()
            raise WorkerFailed(f"{self.pool.role} worker failed to start: {frame.get('message', frame)}")
        self.hello = frame
        self.alive = True
        self.last_pong = time.monotonic()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def send(self, frame: dict) -> None:
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise WorkerFailed("worker is not running")
        if TRACE_FRAMES:
            _trace(frame)
        try:
            self.proc.stdin.write(encode(frame))
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError) as e:
            raise WorkerFailed(f"pipe to worker broke: {e}") from None

    async def _read(self) -> None:
        try:
            while True:
                frame = await read_frame_async(self.proc.stdout)
                self._route(frame)
        except ProtocolError:
            pass
        except Exception:
            log.exception("worker reader failed")
        finally:
            self.alive = False
            await self.pool._worker_exited(self)

    def _route(self, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "pong":
            self.last_pong = time.monotonic()
            return
        req = self.request
        if req is None or frame.get("id") != req.id:
            if kind == "error" and frame.get("id") is None:
                log.warning("worker %s: %s", self.pid, frame.get("message"))
            return
        if kind == "token":
            req.emit(str(frame.get("text", "")))
        elif kind in ("done", "error", "tokens"):
            self.request = None
            self.served += 1
            req.worker = None
            if req.future is not None and not req.future.done():
                req.future.set_result(frame)
            self.pool._worker_idle(self)

    def kill(self) -> None:
        self.alive = False
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    async def stop(self) -> None:
        """Kill and reap: a child left running when the event loop closes outlives the loop's child watcher."""
        self.kill()
        if self.proc is not None:
            await self.proc.wait()


class Pool:
    """``size`` workers of one role, a FIFO queue, restarts with backoff, heartbeats."""

    def __init__(self, role: str, size: int, worker_args: list[str], *, heartbeat_s: float, hang_timeout_s: float,
                 startup_timeout: float, max_restarts: int,
                 on_failure: Callable[[Request, str], None]):
        self.role = role
        self.size = size
        self.worker_args = worker_args
        self.heartbeat_s = heartbeat_s
        self.hang_timeout = hang_timeout_s
        self.startup_timeout = startup_timeout
        self.max_restarts = max_restarts
        self.on_failure = on_failure
        self.workers: list[Worker] = []
        self.queue: list[Request] = []
        self.restarts = 0
        self._restart_times: list[float] = []
        self._closing = False
        self._tasks: set[asyncio.Task] = set()
        self.failed: str | None = None
        self.hello: dict = {}

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        results = await asyncio.gather(*(self._spawn() for _ in range(self.size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == self.size:
            raise errors[0]
        self._spawn_task(self._heartbeat())

    async def _spawn(self) -> Worker:
        worker = Worker(self)
        self.workers.append(worker)
        try:
            await worker.start()
        except BaseException:
            self.workers.remove(worker)
            raise
        self.hello = worker.hello
        self._dispatch()
        return worker

    def _spawn_task(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closing = True
        # Cancel and wait: a restart cancelled inside create_subprocess_exec kills its child and waits for it; left
        # to finish alone, asyncio.run's teardown would cancel that wait too, and the child outlive the loop.
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # One list for both steps: a worker that exits on its shutdown frame leaves self.workers (its reader's
        # doing) before the second step, and must still be reaped here, before the event loop can close.
        workers = list(self.workers)
        for worker in workers:
            if worker.alive:
                try:
                    await worker.send({"type": "shutdown"})
                except WorkerFailed:
                    pass
        for worker in workers:
            if worker.proc is not None:
                try:
                    await asyncio.wait_for(worker.proc.wait(), 3)
                except asyncio.TimeoutError:
                    worker.kill()
                    await worker.proc.wait()
        for req in self.queue:
            if req.future and not req.future.done():
                req.future.set_exception(WorkerFailed("inference is shutting down"))
        self.queue.clear()

    # -- scheduling -----------------------------------------------------------------------------------------------
    def submit(self, req: Request, front: bool = False) -> None:
        req.pools_tried.append(self.role)
        if front:
            self.queue.insert(0, req)
        else:
            self.queue.append(req)
        self._dispatch()

    def _idle_workers(self) -> list[Worker]:
        return sorted((w for w in self.workers if w.alive and w.request is None), key=lambda w: w.served)

    def _dispatch(self) -> None:
        while self.queue:
            idle = self._idle_workers()
            if not idle:
                return
            req = self.queue.pop(0)
            if req.cancelled:
                if req.future and not req.future.done():
                    req.future.set_result({"type": "done", "id": req.id, "text": "", "finish": "cancelled",
                                           "usage": {}, "timings": {}, "cited": []})
                continue
            worker = idle[0]
            worker.request = req
            req.worker = worker
            req.attempts += 1
            req.produced = 0
            self._spawn_task(self._send(worker, req))

    async def _send(self, worker: Worker, req: Request) -> None:
        try:
            await worker.send(req.frame)
        except WorkerFailed:
            worker.kill()  # the reader notices and hands the request to the failure policy

    def _worker_idle(self, worker: Worker) -> None:
        self._dispatch()

    def cancel(self, req: Request) -> None:
        req.cancelled = True
        if req in self.queue:
            self.queue.remove(req)
            if req.future and not req.future.done():
                req.future.set_result({"type": "done", "id": req.id, "text": "", "finish": "cancelled",
                                       "usage": {}, "timings": {}, "cited": []})
        elif req.worker is not None and req.worker.alive:
            self._spawn_task(self._send_quiet(req.worker, {"type": "cancel", "id": req.id}))

    async def _send_quiet(self, worker: Worker, frame: dict) -> None:
        try:
            await worker.send(frame)
        except WorkerFailed:
            pass

    # -- failures -------------------------------------------------------------------------------------------------
    async def _worker_exited(self, worker: Worker) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        if worker.proc is not None:
            try:
                await asyncio.wait_for(worker.proc.wait(), 5)  # reap: no zombies
            except asyncio.TimeoutError:
                await worker.stop()
        req, worker.request = worker.request, None
        if self._closing:  # the request it was serving fails now, not at its timeout
            if req is not None and req.future and not req.future.done():
                req.future.set_exception(WorkerFailed("inference is shutting down"))
            return
        log.warning("%s worker %s exited (code %s)", self.role, worker.pid,
                    worker.proc.returncode if worker.proc else None)
        if req is not None:
            req.worker = None
            if req.cancelled:
                if req.future and not req.future.done():
                    req.future.set_result({"type": "done", "id": req.id, "text": "", "finish": "cancelled",
                                           "usage": {}, "timings": {}, "cited": []})
            else:
                self.on_failure(req, f"{self.role} worker {worker.pid} died")
        self._spawn_task(self._restart())

    async def _restart(self) -> None:
        now = time.monotonic()
        self._restart_times = [t for t in self._restart_times if now - t < 60] + [now]
        if len(self._restart_times) > self.max_restarts:
            self.failed = f"{self.role} workers crashed {len(self._restart_times)} times in a minute; not restarting"
            log.error(self.failed)
            self._fail_queue(self.failed)
            return
        delay = min(10.0, 0.25 * 2 ** (len(self._restart_times) - 1))
        await asyncio.sleep(delay)  # backoff between restarts, not synchronisation
        if self._closing or len(self.workers) >= self.size:
            return
        self.restarts += 1
        try:
            await self._spawn()
        except Exception as e:
            log.error("restarting %s worker failed: %s", self.role, e)
            if not self.workers:
                self._spawn_task(self._restart())

    def _fail_queue(self, reason: str) -> None:
        queued, self.queue = self.queue, []
        for req in queued:
            self.on_failure(req, reason)

    async def _heartbeat(self) -> None:
        seq = 0
        while not self._closing:
            await asyncio.sleep(self.heartbeat_s)  # the heartbeat period
            seq += 1
            now = time.monotonic()
            for worker in list(self.workers):
                if not worker.alive:
                    continue
                if now - worker.last_pong > self.hang_timeout:
                    log.warning("%s worker %s missed heartbeats for %.1f s: killing it", self.role, worker.pid,
                                now - worker.last_pong)
                    worker.kill()
                    continue
                try:
                    await worker.send({"type": "ping", "seq": seq})
                except WorkerFailed:
                    worker.kill()

    def status(self) -> dict:
        return {
            "model": self.hello.get("model"), "backend": self.hello.get("backend"), "size": self.size,
            "alive": sum(w.alive for w in self.workers), "busy": sum(1 for w in self.workers if w.request),
            "queued": len(self.queue), "restarts": self.restarts, "failed": self.failed,
            "pids": [w.pid for w in self.workers if w.alive], "fim": self.hello.get("fim"),
            "n_ctx": self.hello.get("n_ctx"), "gpu_layers": self.hello.get("gpu_layers"),
        }
