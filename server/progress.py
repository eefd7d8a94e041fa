"""Work-done progress for one long job (indexing), when the client supports it: a title, throttled reports
that may come from the encoder thread, the user's cancel, and an end message."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from lsprotocol import types

log = logging.getLogger("engram_ls.server")


class Progress:
    def __init__(self, server, title: str, interval_s: float = 0.2):
        self.server = server
        self.title = title
        self.interval_s = interval_s
        self.token = f"engram-{uuid.uuid4().hex[:8]}"
        self.shown = False
        self._last = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def begin(self) -> None:
        """Asks the client for a progress token; without one the job runs silently."""
        self._loop = asyncio.get_running_loop()
        window = getattr(self.server.client_capabilities, "window", None)
        if not (window and window.work_done_progress):
            return
        try:
            await asyncio.wait_for(self.server.work_done_progress.create_async(self.token), 10)
        except Exception as e:  # the client may refuse; the job goes on without a progress bar
            log.info("no work-done progress: %s", e)
            return
        self.shown = True
        self.server.work_done_progress.begin(self.token, types.WorkDoneProgressBegin(
            title=self.title, cancellable=True, percentage=0))

    def report(self, done: int, total: int, message: str) -> None:
        """Safe from any thread; at most one report per interval, and always the last one."""
        now = time.monotonic()
        if not self.shown or (now - self._last < self.interval_s and done != total):
            return
        self._last = now
        value = types.WorkDoneProgressReport(message=f"{done}/{total} {message}",
                                             percentage=int(100 * done / total) if total else 100)
        self._loop.call_soon_threadsafe(self.server.work_done_progress.report, self.token, value)

    def cancelled(self) -> bool:
        """Whether the user cancelled the job from the client's progress UI."""
        future = self.server.work_done_progress.tokens.get(self.token)
        return bool(self.shown and future is not None and future.cancelled())

    def end(self, message: str) -> None:
        if self.shown:
            self.server.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
