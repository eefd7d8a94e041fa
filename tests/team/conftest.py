"""A real llama.cpp ``llama-server`` on 127.0.0.1 serving the shipped GGUF, for the team (``backend.kind: openai``)
tests and bench. The binary is built by ``tests/install_llama_server.sh`` (``tests/run.sh`` calls it);
``$ENGRAM_LS_LLAMA_SERVER`` points at another one."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from engram_ls.inference import InferenceSettings, models

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "ENGRAM_TEAM_TEST_KEY"
KEY = "team-test-key-5f1c2b"


def server_binary() -> Path:
    path = Path(os.environ.get("ENGRAM_LS_LLAMA_SERVER") or ROOT / ".tools/llama-server-0.3.36/llama-server")
    if not os.access(path, os.X_OK):
        pytest.fail(f"llama-server not found at {path}: run `bash tests/install_llama_server.sh`", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One llama-server process; ``restart`` brings it back on the same port, as an operator would."""

    def __init__(self, port: int | None = None, parallel: int = 2, ctx_per_slot: int = 4096, threads: int = 2,
                 api_key: str | None = KEY, batch: int | None = None, extra: list[str] = ()):
        self.port = port or free_port()
        self.parallel, self.ctx, self.threads, self.api_key = parallel, ctx_per_slot * parallel, threads, api_key
        self.batch = batch  # -b/-ub: prompt tokens per decode step
        self.extra = list(extra)  # further llama-server flags (the bench's tuning, e.g. --poll 0)
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(server_binary()), "-m", str(models.model_path()), "--host", "127.0.0.1", "--port", str(self.port),
               "-np", str(self.parallel), "-c", str(self.ctx), "-t", str(self.threads), "--slots", "--metrics",
               "--no-webui"]
        if self.batch:
            cmd += ["-b", str(self.batch), "-ub", str(self.batch)]
        return cmd + self.extra + (["--api-key", self.api_key] if self.api_key else [])

    def start(self, wait: bool = True) -> "LlamaServer":
        with open(self.log, "ab") as log:
            # SLOTS_DEBUG: /slots shows each slot's last prompt, so tests can see what reached the server
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=dict(os.environ, LLAMA_SERVER_SLOTS_DEBUG="1"))
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Polls /health until the model is loaded (503 while loading)."""
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if self.get("/health").get("status") == "ok":
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"llama-server not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def get(self, path: str, raw: bool = False):
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=headers), timeout=10) as r:
            body = r.read()
        return body.decode() if raw else json.loads(body)

    def metrics(self) -> dict[str, float]:
        """llama-server's Prometheus counters and gauges (``/metrics``), without the ``llamacpp:`` prefix."""
        values = {}
        for line in self.get("/metrics", raw=True).splitlines():
            if line.startswith("llamacpp:"):
                name, value = line.split()[:2]
                values[name.removeprefix("llamacpp:")] = float(value)
        return values

    def tokens_predicted(self) -> int:
        """All tokens the server has generated, counted when each request's slot is released (cancelled ones too)."""
        value = self.metrics().get("tokens_predicted_total")
        if value is None:
            raise AssertionError("llama-server /metrics has no tokens_predicted_total")
        return int(value)

    def slots(self) -> list[dict]:
        return self.get("/slots")

    def idle(self) -> bool:
        return not any(s["is_processing"] for s in self.slots())

    def kill(self) -> None:
        """SIGKILL: the crash an operator's restart follows."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()


def _abort(sock: socket.socket) -> None:
    """Closes with a TCP reset, as a crashed server's kernel does; wakes a thread blocked in recv on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class FaultyProxy:
    """A TCP proxy in front of the real llama-server, for network faults on cue: ``drop()`` resets every open
    connection (the editor's side of a crash), and while ``hold`` is set new connections are accepted but never
    forwarded (a server that is up but has not answered yet, e.g. still reading a long prompt)."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.hold, self.held = False, 0
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            with self.lock:
                self.open.append(client)
                if self.hold:
                    self.held += 1
                    continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.open.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True, name="proxy-pipe").start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def drop(self) -> None:
        with self.lock:
            conns, self.open = self.open, []
        for sock in conns:
            _abort(sock)

    def close(self) -> None:
        self.listener.close()
        self.drop()


def team_settings(url: str, **kw) -> InferenceSettings:
    """The tests check behaviour, not speed: the deadline is far (on the loaded 2-core machine a 64-token completion
    resumed after a restart once took over 300 s); the deadline test sets its own."""
    defaults = dict(backend="openai", url=url, api_key_env=KEY_ENV, remote_model="qwen2.5-coder-0.5b",
                    heartbeat_s=1.0, hang_timeout_s=30.0, request_timeout_s=1800.0)
    defaults.update(kw)
    return InferenceSettings(**defaults)


@pytest.fixture(scope="session")
def llama_server():
    server = LlamaServer(parallel=2, batch=256).start()
    yield server
    server.stop()


@pytest.fixture
def team_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY
