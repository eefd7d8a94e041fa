"""Server-sent events from one HTTP POST (stdlib only), cancellable at any moment.

``http.client`` blocks in a read until the server sends something, and a server evaluating a long prompt sends
nothing for seconds (llama-server sends its headers only with the first token). So a watcher thread resets the
connection as soon as ``should_stop()`` turns true: a cancel or a deadline ends the request at once, and the server
sees its client gone and frees the slot instead of generating for nobody.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
from typing import Callable, Iterator
from urllib.parse import SplitResult

POLL_S = 0.01       # how often the watcher looks at should_stop(): well under one token-time (30-150 ms here)
CONNECT_S = 10.0    # connecting is the only step with a socket timeout; after it, should_stop() bounds the wait
RETRY_STATUS = {502, 503, 504}   # a proxy without its upstream, or llama-server still loading its model


class Unreachable(Exception):
    """The server could not be reached or dropped the stream: worth retrying."""


class HTTPStatusError(Exception):
    """The server answered with an error status; ``message`` is its error text when it sent one."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status, self.reason, self.message = status, reason, message


def _error_text(raw: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's start."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        error = json.loads(text).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return text[:300]


def _reset(conn: http.client.HTTPConnection) -> None:
    """Ends the connection with a TCP reset, from any thread: a blocked read returns and the server's next write
    fails at once (a plain FIN would let one more write through)."""
    sock = conn.sock
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def post_events(url: SplitResult, path: str, body: dict, headers: dict[str, str],
                should_stop: Callable[[], bool], on_connect: Callable[[], None] | None = None) -> Iterator[dict]:
    """POSTs ``body`` as JSON and yields each ``data:`` event as a dict until ``[DONE]``. Returns quietly once
    ``should_stop()`` is true; raises ``Unreachable`` (refused, reset, dropped mid-stream, 502/503/504) or
    ``HTTPStatusError``."""
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = cls(url.hostname, url.port, timeout=CONNECT_S)
    finished = threading.Event()
    lock = threading.Lock()  # the watcher never touches a socket that the request has already closed

    def watch() -> None:
        while not finished.wait(POLL_S):
            if should_stop():
                with lock:
                    if not finished.is_set():
                        _reset(conn)
                return

    watcher = threading.Thread(target=watch, daemon=True, name="http-cancel")
    try:
        try:
            conn.connect()
            if on_connect is not None:
                on_connect()  # the server is reachable (it may still be reading the prompt)
            conn.sock.settimeout(None)
            watcher.start()
            conn.request("POST", path, json.dumps(body), {**headers, "Content-Type": "application/json",
                                                         "Accept": "text/event-stream"})
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            if should_stop():
                return
            raise Unreachable(str(e) or type(e).__name__) from None
        if resp.status != 200:
            error = HTTPStatusError(resp.status, resp.reason, _error_text(resp.read(2000)))
            raise Unreachable(str(error)) if resp.status in RETRY_STATUS else error
        try:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue  # blank separators, comments (SSE pings), event names
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise HTTPStatusError(200, "OK", f"bad event: {data[:200]}") from None
                if isinstance(event, dict) and event.get("error"):
                    raise HTTPStatusError(200, "OK", _error_text(data.encode()))
                yield event
        except (OSError, http.client.HTTPException) as e:
            if should_stop():
                return
            raise Unreachable(f"stream broke: {e or type(e).__name__}") from None
        if not should_stop():
            raise Unreachable("the server closed the stream before its end")
    finally:
        with lock:
            finished.set()
            conn.close()
