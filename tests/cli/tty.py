"""Running the real console script in a pseudo-terminal, as a user does: the pty is the process's controlling
terminal, so a ``\\x03`` typed into it is turned into SIGINT for the whole foreground process group (the command
and its model workers) by the kernel's line discipline — exactly what Ctrl-C does."""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

EXE = Path(sys.executable).parent / "engram-ls"
CTRL_C = b"\x03"


def _controlling_tty() -> None:  # runs in the child after setsid(): fd 0 (the pty) becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``argv`` with stdin/stdout (and optionally stderr) on a fresh pty; everything it writes there is collected."""

    def __init__(self, argv: list[str], env: dict, stderr_on_tty: bool = False, cwd: Path | None = None):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([str(a) for a in argv], stdin=slave, stdout=slave,
                                     stderr=slave if stderr_on_tty else subprocess.PIPE, env=env, cwd=cwd,
                                     start_new_session=True, preexec_fn=_controlling_tty)
        os.close(slave)
        self._out = bytearray()
        self._err = bytearray()
        self._closed = False
        self._lock = threading.Condition()
        self._readers = [threading.Thread(target=self._pump, daemon=True)]
        if self.proc.stderr is not None:
            self._readers.append(threading.Thread(target=self._pump_err, daemon=True))
        for t in self._readers:
            t.start()

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every process holding the slave has exited
                data = b""
            with self._lock:
                if not data:
                    self._closed = True
                    self._lock.notify_all()
                    return
                self._out += data
                self._lock.notify_all()

    def _pump_err(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            with self._lock:
                self._err += chunk
                self._lock.notify_all()

    @property
    def output(self) -> str:
        with self._lock:
            return self._out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        with self._lock:
            return self._err.decode("utf-8", "replace")

    def wait_for(self, predicate, timeout: float = 120.0) -> None:
        """Waits (bounded) until ``predicate(self)`` holds; fails with what was seen so far."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if predicate(self):
                    return
                if time.monotonic() > deadline or (self._closed and self.proc.poll() is not None):
                    raise AssertionError(f"not seen; rc={self.proc.poll()}; output so far:\n"
                                         f"{self._out.decode(errors='replace')}\n"
                                         f"stderr:\n{self._err.decode(errors='replace')}")
                self._lock.wait(0.5)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 60.0) -> int:
        """The exit code, once the process has exited and its output has been read to the end."""
        rc = self.proc.wait(timeout)
        for t in self._readers[1:]:
            t.join(timeout)
        return rc

    def wait_or_describe(self, timeout: float = 60.0) -> int:
        """``wait``, but a process still running after ``timeout`` fails with what /proc says of it (its state,
        what it waits in, its signal masks) and what it wrote: a hang must say where it hangs."""
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s: {describe(self.proc.pid)}; output "
                                 f"{self.output!r}; stderr {self.stderr!r}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


# -- processes ----------------------------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def describe(pid: int) -> dict:
    """What /proc says of a process: state, threads, signal masks (pending, blocked, ignored, caught), where it
    waits, its process group and its terminal's foreground group."""
    out: dict = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("State", "Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"):
                out[key] = value.strip()
        out["wchan"] = Path(f"/proc/{pid}/wchan").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["pgrp"], out["tpgid"] = fields[2], fields[5]
    except OSError as e:
        out["error"] = str(e)
    return out


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] == pid and st[0] != "Z":
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """The processes still alive after waiting (bounded) for them to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)  # polling a condition with a bound, not synchronising on time
    return [p for p in pids if alive(p)]
