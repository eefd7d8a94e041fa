"""Workspace roots: one ``Engram`` per root folder, background indexing, and the mapping from a document URI to
the engram and relative path that hold it. With no workspace folder at all, the folder of the first file opened
becomes a root (a "loose folder"), bounded to ``LOOSE_MAX_FILES`` files.

Two worker threads keep the event loop free (numba and numpy release the GIL): the *editor* thread applies the
editor's updates (short, in order; updates for the same document coalesce, so a typing storm costs one update per
burst), and the *background* thread runs what may take long — indexing a workspace, saving the store, and settling
the syntax structure when typing pauses. A search waits only for the editor's pending updates, never behind an index
or a save: the engram's lock is taken per file, so they interleave.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from engram_ls.retrieval import Engram, Hit, kernels

from .convert import path_to_uri, uri_to_path
from .progress import Progress

if TYPE_CHECKING:
    from .app import EngramServer

log = logging.getLogger("engram_ls.server")
LOOSE_MAX_FILES = 2000  # a loose folder may be a home or Downloads folder: index a project's worth, not all of it
SETTLE_DELAY_S = 0.5    # typing pause after which the edited documents' syntax structure is brought up to date


def warm_and_freeze() -> None:
    """Background work at start: numba's start-up (~1.5 s) is paid here, not by an edit or a search; then every
    object alive (modules, numba's ~100k typing objects) moves to the permanent generation. A full collection had
    to traverse them all — 0.3 s at load 5, several times that under load, with the GIL held, stalling the event
    loop whenever an index's allocations triggered one; after the freeze it takes a few ms. Only the young
    generations are collected first: a full collection here was itself that 0.27 s stall, at every start (the
    longest event-loop stall the server bench saw while indexing); the old generation's little garbage is frozen."""
    kernels.warm()
    gc.collect(1)
    gc.freeze()


class Roots:
    def __init__(self, server: "EngramServer"):
        self.server = server
        self.engrams: dict[Path, Engram] = {}
        self.indexing: dict[Path, asyncio.Task] = {}
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-index")
        self.background.submit(warm_and_freeze)
        self._dirty: dict[str, asyncio.Task] = {}
        self._applying: set[asyncio.Future] = set()
        self._settle_timers: dict[Path, asyncio.TimerHandle] = {}
        self.last_summary: dict[str, dict] = {}
        self._save_error_shown: set[Path] = set()
        self.folders_given = False  # the client named workspace folders; no loose folders then
        self.loose: set[Path] = set()

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
        settings = self.server.config.index
        if path in self.loose:
            settings = dataclasses.replace(settings, max_files=min(settings.max_files, LOOSE_MAX_FILES))
        engram = Engram.open(path, settings)
        if engram.load_warning:
            self.server.tell(types.MessageType.Warning, engram.load_warning)
        self.engrams[path] = engram
        return engram

    def adopt_loose(self, uri: str) -> bool:
        """With no workspace folder, the folder of an opened file outside every root becomes a root, indexed in
        the background; the user is told once per folder. False when there is nothing to adopt."""
        path = uri_to_path(uri)
        if self.folders_given or path is None or not path.is_file() or self.locate(uri)[0] is not None:
            return False
        folder = path.parent.resolve()
        self.loose.add(folder)
        if self.add(folder) is None:
            return False
        self.server.tell(types.MessageType.Info,
                         f"no workspace folder is open, so the folder of {path.name} is indexed: {folder} "
                         f"(up to {LOOSE_MAX_FILES} files). Open a project folder to index a whole project.")
        self.index_all()
        return True

    def remove(self, path: Path) -> None:
        path = path.resolve()
        task = self.indexing.pop(path, None)
        if task is not None:
            task.cancel()
        engram = self.engrams.pop(path, None)
        if engram is not None:
            self.save_later(engram)

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
        loop = asyncio.get_running_loop()
        loose = " (no workspace folder: the open file's folder)" if root in self.loose else ""
        progress = Progress(self.server, f"engram-ls: indexing {root.name}{loose}")
        await progress.begin()

        def work():
            summary = engram.index_workspace(progress.report, progress.cancelled)
            self.save_quietly(engram, loop)
            return summary

        try:
            summary = await loop.run_in_executor(self.background, work)
        except Exception as e:
            log.exception("indexing %s failed", root)
            self.last_summary[str(root)] = {"root": str(root), "error": str(e)}
            progress.end(f"failed: {e}")
            raise
        result = {"root": str(root), "files": summary.files, "chunks": summary.chunks,
                  "seconds": round(summary.seconds, 3), "encoded_files": summary.encoded_files,
                  "cancelled": summary.cancelled}
        self.last_summary[str(root)] = result
        progress.end("cancelled" if summary.cancelled else f"{summary.files} files, {summary.chunks} chunks")
        log.info("indexed %s: %s", root, result)
        return result

    async def reindex(self) -> dict:
        """Indexes every root again; the totals, and each root's summary."""
        results = await asyncio.gather(*self.index_all(), return_exceptions=True)
        ok = [r for r in results if isinstance(r, dict)]
        if not ok and results:
            raise RuntimeError(f"reindexing failed: {results[0]}")
        return {"files": sum(r["files"] for r in ok), "chunks": sum(r["chunks"] for r in ok),
                "seconds": round(sum(r["seconds"] for r in ok), 3), "roots": ok}

    async def wait_indexed(self) -> None:
        tasks = [t for t in self.indexing.values() if not t.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- documents ------------------------------------------------------------------------------------------------
    def document_changed(self, uri: str) -> None:
        """Coalesces editor updates: the engram gets the document's latest text once the encoder is free."""
        engram, rel = self.locate(uri)
        if engram is None and self.adopt_loose(uri):
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
        loop = asyncio.get_running_loop()
        applying = loop.run_in_executor(self.server.executor, engram.set_document, rel, text)
        self._applying.add(applying)
        try:
            await applying
        finally:
            self._applying.discard(applying)
        self.settle_later(engram)

    def settle_later(self, engram: Engram) -> None:
        """Brings the edited documents' syntax structure up to date once typing has paused (background thread)."""
        timer = self._settle_timers.pop(engram.root, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                engram.settle()
            except Exception:  # background work: log it, the next pause tries again
                log.exception("settling %s failed", engram.root)

        def settle() -> None:
            self._settle_timers.pop(engram.root, None)
            self.background.submit(run)
        self._settle_timers[engram.root] = loop.call_later(SETTLE_DELAY_S, settle)

    async def settle_now(self, engram: Engram) -> None:
        """Settles at once (after the pending edits): for diagnostics that must see the final structure."""
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(self.background, engram.settle)

    def save_later(self, engram: Engram) -> None:
        """Saves the store on the background thread (a save never delays an edit or a search)."""
        self.background.submit(self.save_quietly, engram, asyncio.get_running_loop())

    def submit(self, fn, *args) -> None:
        """An editor-ordered update (close, delete, watched-file change) on the editor thread."""
        self.server.executor.submit(fn, *args)

    async def flush(self, uri: str | None = None) -> None:
        """Waits for the editor's pending updates (all, or one document's) — not for indexing or saves."""
        tasks = [t for u, t in self._dirty.items() if uri is None or u == uri]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._applying:
            await asyncio.gather(*list(self._applying), return_exceptions=True)
        # a no-op job on the editor thread runs after every update queued before it (closes, watched files)
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
                loop.call_soon_threadsafe(self.server.tell, types.MessageType.Warning,
                                          f"cannot save the index for {engram.root.name} ({e.strerror or e}); "
                                          f"serving it from memory")
            return False

    async def save_all(self) -> None:
        loop = asyncio.get_running_loop()
        for engram in list(self.engrams.values()):
            await loop.run_in_executor(self.background, self.save_quietly, engram, loop)

    def status(self) -> dict:
        return {str(root): {**engram.stats(), "uri": path_to_uri(root), "loose": root in self.loose,
                            "indexing": not self.indexing.get(root, _Done()).done() or str(root) not in self.last_summary}
                for root, engram in self.engrams.items()}


class _Done:
    def done(self) -> bool:
        return True
