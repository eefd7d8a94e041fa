"""Workspace roots: one ``Engram`` per root folder, background indexing with work-done progress, and the mapping
from a document URI to the engram and relative path that hold it.

Encoding runs on one executor thread (numba and numpy release the GIL), so the event loop keeps serving while a
workspace indexes; editor updates for the same document coalesce, so a typing storm costs one re-encode per burst.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from engram_ls.retrieval import Engram, Hit

from .convert import path_to_uri, uri_to_path

if TYPE_CHECKING:
    from .app import EngramServer

log = logging.getLogger("engram_ls.server")


class Roots:
    def __init__(self, server: "EngramServer"):
        self.server = server
        self.engrams: dict[Path, Engram] = {}
        self.indexing: dict[Path, asyncio.Task] = {}
        self._dirty: dict[str, asyncio.Task] = {}
        self.last_summary: dict[str, dict] = {}
        self._save_error_shown: set[Path] = set()

    # -- roots ----------------------------------------------------------------------------------------------------
    def set_roots(self, paths: list[Path]) -> None:
        for path in paths:
            self.add(path)

    def add(self, path: Path) -> Engram | None:
        path = path.resolve()
        if path in self.engrams:
            return self.engrams[path]
        if not path.is_dir():
            log.warning("workspace folder %s is not a directory; ignored", path)
            return None
        engram = Engram.open(path, self.server.config.index)
        if engram.load_warning:
            self.server.window_show_message(types.ShowMessageParams(
                types.MessageType.Warning, f"engram-ls: {engram.load_warning}"))
        self.engrams[path] = engram
        return engram

    def remove(self, path: Path) -> None:
        path = path.resolve()
        task = self.indexing.pop(path, None)
        if task is not None:
            task.cancel()
        engram = self.engrams.pop(path, None)
        if engram is not None:
            self.server.executor.submit(self.save_quietly, engram, asyncio.get_running_loop())

    def locate(self, uri: str) -> tuple[Engram | None, str | None]:
        """The engram whose root holds ``uri`` (the deepest root wins) and the path relative to it."""
        path = uri_to_path(uri)
        if path is None:
            return None, None
        try:
            path = path.resolve()
        except OSError:
            return None, None
        best = None
        for root in self.engrams:
            if path == root or root in path.parents:
                if best is None or len(root.parts) > len(best.parts):
                    best = root
        if best is None:
            return None, None
        return self.engrams[best], path.relative_to(best).as_posix()

    def within(self, path: Path) -> bool:
        """Whether a path (after resolving symlinks) lies inside one of the workspace roots."""
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return False
        return any(real == root or root in real.parents for root in self.engrams)

    # -- indexing -------------------------------------------------------------------------------------------------
    def index_all(self) -> list[asyncio.Task]:
        tasks = []
        for root in list(self.engrams):
            running = self.indexing.get(root)
            if running is None or running.done():
                self.indexing[root] = asyncio.ensure_future(self._index(root))
            tasks.append(self.indexing[root])
        return tasks

    async def _index(self, root: Path) -> dict:
        engram = self.engrams[root]
        server = self.server
        loop = asyncio.get_running_loop()
        token = f"engram-index-{uuid.uuid4().hex[:8]}"
        progress_ok = False
        if _supports_progress(server):
            try:
                await asyncio.wait_for(server.work_done_progress.create_async(token), 10)
                progress_ok = True
            except Exception as e:  # the client may refuse; indexing goes on without a progress bar
                log.info("no work-done progress: %s", e)
        if progress_ok:
            server.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                title=f"engram-ls: indexing {root.name}", cancellable=True, percentage=0))
        state = {"last": 0.0}

        def progress(done: int, total: int, path: str) -> None:
            now = time.monotonic()
            if progress_ok and (now - state["last"] > 0.2 or done == total):
                state["last"] = now
                pct = int(100 * done / total) if total else 100
                loop.call_soon_threadsafe(server.work_done_progress.report, token, types.WorkDoneProgressReport(
                    message=f"{done}/{total} {path}", percentage=pct))

        def cancelled() -> bool:
            fut = server.work_done_progress.tokens.get(token)
            return bool(progress_ok and fut is not None and fut.cancelled())

        def work():
            summary = engram.index_workspace(progress, cancelled)
            self.save_quietly(engram, loop)
            return summary

        try:
            summary = await loop.run_in_executor(server.executor, work)
        except Exception as e:
            log.exception("indexing %s failed", root)
            self.last_summary[str(root)] = {"root": str(root), "error": str(e)}
            if progress_ok:
                server.work_done_progress.end(token, types.WorkDoneProgressEnd(message=f"failed: {e}"))
            raise
        result = {"root": str(root), "files": summary.files, "chunks": summary.chunks,
                  "seconds": round(summary.seconds, 3), "encoded_files": summary.encoded_files,
                  "cancelled": summary.cancelled}
        self.last_summary[str(root)] = result
        if progress_ok:
            server.work_done_progress.end(token, types.WorkDoneProgressEnd(
                message=("cancelled" if summary.cancelled else f"{summary.files} files, {summary.chunks} chunks")))
        log.info("indexed %s: %s", root, result)
        return result

    async def wait_indexed(self) -> None:
        tasks = [t for t in self.indexing.values() if not t.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- documents ------------------------------------------------------------------------------------------------
    def document_changed(self, uri: str) -> None:
        """Coalesces editor updates: the engram gets the document's latest text once the encoder is free."""
        engram, rel = self.locate(uri)
        if engram is None or not engram.is_indexable(rel):
            return
        if uri in self._dirty and not self._dirty[uri].done():
            return  # the pending update will read the newest text
        self._dirty[uri] = asyncio.ensure_future(self._update(uri, engram, rel))

    async def _update(self, uri: str, engram: Engram, rel: str) -> None:
        await asyncio.sleep(0)  # let the rest of a burst of didChange notifications arrive first
        self._dirty.pop(uri, None)
        try:
            doc = self.server.workspace.get_text_document(uri)
            text = doc.source
        except Exception as e:
            log.warning("cannot read %s: %s", uri, e)
            return
        await asyncio.get_running_loop().run_in_executor(self.server.executor, engram.set_document, rel, text)

    async def flush(self, uri: str | None = None) -> None:
        """Waits for pending engram updates (all, or one document's)."""
        tasks = [t for u, t in self._dirty.items() if uri is None or u == uri]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # a no-op job on the single encoder thread runs after every update queued before it
        await asyncio.get_running_loop().run_in_executor(self.server.executor, lambda: None)

    async def search(self, query: str, k: int = 10, scope: str | None = None, root: Path | None = None
                     ) -> list[tuple[Path, Hit]]:
        """Top-k hits over every root (or one), merged by score, after the editor's pending updates."""
        await self.flush()
        loop = asyncio.get_running_loop()
        roots = [root] if root is not None else list(self.engrams)
        results: list[tuple[Path, Hit]] = []
        for r in roots:
            engram = self.engrams.get(r)
            if engram is None:
                continue
            hits = await loop.run_in_executor(None, engram.search, query, k, scope)
            results.extend((r, h) for h in hits)
        results.sort(key=lambda rh: -rh[1].score)
        return results[:k]

    def save_quietly(self, engram: Engram, loop: asyncio.AbstractEventLoop) -> bool:
        """Saves the store; a failure (read-only or full disk) is reported once and the index is served from
        memory — nothing is lost, the next save tries again."""
        try:
            engram.save()
            self._save_error_shown.discard(engram.root)
            return True
        except OSError as e:
            log.warning("cannot save the engram store for %s: %s", engram.root, e)
            if engram.root not in self._save_error_shown:
                self._save_error_shown.add(engram.root)
                loop.call_soon_threadsafe(self.server.window_show_message, types.ShowMessageParams(
                    types.MessageType.Warning,
                    f"engram-ls: cannot save the index for {engram.root.name} ({e.strerror or e}); serving it from memory"))
            return False

    async def save_all(self) -> None:
        loop = asyncio.get_running_loop()
        for engram in list(self.engrams.values()):
            await loop.run_in_executor(self.server.executor, self.save_quietly, engram, loop)

    def status(self) -> dict:
        return {str(root): {**engram.stats(), "uri": path_to_uri(root),
                            "indexing": not self.indexing.get(root, _Done()).done() or str(root) not in self.last_summary}
                for root, engram in self.engrams.items()}


class _Done:
    def done(self) -> bool:
        return True


def _supports_progress(server: "EngramServer") -> bool:
    caps = server.client_capabilities
    window = getattr(caps, "window", None)
    return bool(window and window.work_done_progress)
