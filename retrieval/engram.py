"""``Engram``: one workspace's engrams, kept current document by document, searched with citations.

A thin facade over parts with one job each: ``FeatureTable`` (feature ids, HVs, document frequencies),
``ChunkTable`` (chunk columns, feature arena, postings), ``documents`` (per-file state and the text diff),
``chunking`` (tree-sitter units), ``encoder`` (features -> weights, norms), ``ranking`` (two-stage search),
``semantic`` (Random Indexing) and ``store`` (plain snapshots on disk).

A keystroke is incremental: the diff gives the changed lines, later chunks shift, and only the chunks that overlap
the change are re-encoded, so the new text is searchable at once. The syntax structure (which units exist) is
brought up to date by ``settle()``, which re-parses incrementally with tree-sitter and re-encodes only chunks whose
span or text changed; the server runs it when typing pauses, and it never runs on a query path.
"""

from __future__ import annotations

import ctypes
import fnmatch
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import kernels, ranking, store as store_mod, vsa
from .chunk_table import KINDS, ChunkTable
from .chunking import Chunk, chunk_text, digest_int, parser_for, spans_for
from .documents import Document, diff, map_lines, normalise, sha_of, split_lines
from .encoder import count_features, encode_chunks, engram_of
from .features import path_words
from .secrets import redact
from .semantic import TermSpace
from .settings import IndexSettings
from .vocabulary import FeatureTable
from .walk import WorkspaceFilter, read_text_file, walk_files

LINES_CACHE_FILES = 64            # closed files whose lines are kept for hit texts
FAST_PATH_MAX_CHUNKS = 4          # a change touching more chunks than this is re-chunked at once
SEMANTIC_REFRESH_SHARE = 0.1      # settle() re-learns the semantic layer when this share of chunks changed
READER_WAIT_S = 0.2               # the longest a background index step waits for running searches to finish
_PEM_MARK = "PRIVATE KEY-----"


@dataclass(frozen=True)
class Hit:
    """A search result: ``start_line``..``end_line`` are 1-based, inclusive; ``text`` has secrets redacted."""

    path: str
    start_line: int
    end_line: int
    score: float
    text: str
    priority: tuple[int, ...] = ()
    """Per line of ``text``, how long it stays when the whole does not fit a prompt: lower stays longer (an
    outline's class line 0, its members in their rank order). Empty: the text is all or nothing."""


@dataclass
class IndexSummary:
    files: int
    chunks: int
    seconds: float
    encoded_files: int
    removed_files: int
    cancelled: bool = False
    skipped: dict | None = None


def _apply_change(text: str, start: tuple[int, int], end: tuple[int, int], new_text: str,
                  lines: list[str] | None = None) -> str:
    """Replaces the range (0-based line, code-point column) in text; positions past the end are clamped.
    ``lines``: the text's lines when already split (an open document's, for a text without \\r)."""
    lines = text.split("\n") if lines is None else lines
    for line, col in (start, end):
        if line < 0 or col < 0:
            raise ValueError(f"negative position {(line, col)}")
    if end < start:
        raise ValueError(f"range end {end} is before its start {start}")

    def offset(line: int, col: int, base: int = 0, from_line: int = 0) -> int:
        """The offset of (line, col), counting lines from ``from_line`` (at offset ``base``)."""
        if line >= len(lines):
            return len(text)
        return base + sum(map(len, lines[from_line:line])) + (line - from_line) + min(col, len(lines[line]))

    a = offset(*start)
    if start[0] >= len(lines):
        return text + new_text
    b = offset(end[0], end[1], a - min(start[1], len(lines[start[0]])), start[0])
    return text[:a] + new_text + text[b:]


def _redacted_texts(lines: list[str], spans, whole_doc_pem: bool) -> list[str]:
    """Chunk texts with secrets redacted. Redaction is per chunk (it costs what the edit touched) unless the
    document holds a private key block, which may span chunks: then the whole document is redacted first."""
    if whole_doc_pem:
        lines = redact("\n".join(lines)).split("\n")
        return [chunk_text(lines, s[0], s[1]) for s in spans]
    return [redact(chunk_text(lines, s[0], s[1])) for s in spans]


@dataclass
class _Prepared:
    """A closed file's chunks, worked out without the engram's lock: its lines, spans, redacted chunk texts and
    (for a file new to the index) their feature counts."""

    sha: str
    lines: list[str]
    spans: list
    texts: list[str]
    counted: list[dict[str, int]] | None


def _prepare(path: str, text: str, count: bool) -> _Prepared:
    """Everything in indexing a closed file that reads no shared state (chunking, redaction, tokenising)."""
    norm = normalise(text)
    lines = split_lines(norm)
    spans = spans_for(path, lines, None)
    texts = _redacted_texts(lines, spans, _PEM_MARK in norm)
    return _Prepared(sha_of(text), lines, spans, texts, count_features(texts, path_words(path)) if count else None)


def _return_freed_memory() -> None:
    """Hands the heap pages freed by a large index back to the OS. glibc keeps them (measured on the ~50k-chunk
    corpus: 190 of the 410 MB an index had added to the RSS were freed temporaries); elsewhere this is a no-op.
    ctypes releases the GIL for the call."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _used_words(used: np.ndarray, words: dict[int, str]) -> dict:
    """The words among the stored features, by their position in ``used`` (the stored ids)."""
    order = np.argsort(used)
    wid = np.fromiter(words.keys(), np.int64, len(words))
    pos = np.minimum(np.searchsorted(used[order], wid), max(0, len(used) - 1))
    stored = (used[order][pos] == wid) if len(used) else np.zeros(len(wid), bool)
    return {"word_ids": order[pos[stored]], "words": [words[i] for i in wid[stored].tolist()]}


class Engram:
    """A workspace's engram index. Thread-safe: every public method takes one lock, held only for short steps."""

    def __init__(self, root: Path, settings: IndexSettings | None = None, cache_dir: Path | None = None):
        self.root = Path(root).resolve()
        self.settings = settings or IndexSettings()
        self.store_path = store_mod.store_path(self.root, cache_dir)
        self.load_warning: str | None = None
        self._lock = threading.RLock()
        self._lines_lock = threading.Lock()
        self._lines_cache: OrderedDict[str, tuple[tuple[int, int], list[str] | None]] = OrderedDict()
        self._readers = 0                        # searches running or waiting for the lock
        self._readers_lock = threading.Lock()
        self._no_readers = threading.Event()     # set while no search runs: a background index waits for it
        self._no_readers.set()
        self._filter = WorkspaceFilter(self.root, self.settings)
        self._reset()

    def _reset(self) -> None:
        self.features = FeatureTable()
        self.table = ChunkTable()
        self.docs: dict[str, Document] = {}
        self.doc_paths: list[str | None] = []
        self._free_doc_ids: list[int] = []
        self.terms = TermSpace()
        self._changed_since_semantic = 0
        self._folder_cache: dict[str, tuple[int, np.ndarray]] = {}
        self._version = 0
        self._saved_stamp: int | None = None      # ``_stored_stamp`` when the store was last written or read

    @classmethod
    def open(cls, root: Path, settings: IndexSettings | None = None, cache_dir: Path | None = None) -> "Engram":
        """Opens a workspace, loading its persisted store when it is valid (else ``load_warning`` says why)."""
        engram = cls(root, settings, cache_dir)
        try:
            snapshot = store_mod.load(engram.store_path, str(engram.root))
        except store_mod.StoreError as e:
            engram.load_warning = f"{e}; rebuilding the index"
            snapshot = None
        if snapshot is not None:
            try:
                engram._restore(snapshot)
                engram._saved_stamp = engram._stored_stamp()
            except Exception as e:  # never a crash, never silently wrong: start empty and say so
                engram._reset()
                engram.load_warning = (f"engram store {engram.store_path} could not be loaded "
                                       f"({type(e).__name__}: {e}); rebuilding the index")
        return engram

    # -- documents ------------------------------------------------------------------------------------------------
    def is_indexable(self, path: str) -> bool:
        """Whether a relative path passes the ignore rules and the secret filter (size/binary are checked on read)."""
        return bool(path) and not path.startswith("../") and not self._filter.excluded(path)

    def set_document(self, path: str, text: str, keep_text: bool = True) -> None:
        """Replaces a document's content. For a document already open this is incremental: only the chunks that
        overlap the changed lines are re-encoded now (see ``settle`` for the rest)."""
        with self._lock:
            limit = self.settings.max_file_bytes
            if "\0" in text[:8192] or len(text) > limit or \
                    (4 * len(text) > limit and len(text.encode("utf-8", "surrogatepass")) > limit):
                self.remove_document(path)
                return
            doc = self.docs.get(path)
            if keep_text and doc is not None and doc.lines is not None and self._edit(path, doc, text):
                return
            self._index_text(path, text, size=len(text), mtime_ns=0 if doc is None else doc.mtime_ns,
                             keep_text=keep_text)

    def apply_edit(self, path: str, start: tuple[int, int], end: tuple[int, int], new_text: str) -> None:
        """Applies an LSP-style edit (0-based line, code-point column) to a document and updates its engrams."""
        with self._lock:
            current = self.document_text(path)
            if current is None:
                raise KeyError(f"document not in the index: {path}")
            doc = self.docs.get(path)
            lines = doc.lines if doc is not None and doc.text is not None and "\r" not in current else None
            self.set_document(path, _apply_change(current, start, end, new_text, lines))

    def remove_document(self, path: str) -> None:
        with self._lock:
            doc = self.docs.pop(path, None)
            if doc is None:
                return
            for slot in doc.slots:
                self._drop(slot)
            self.doc_paths[doc.doc_id] = None
            self._free_doc_ids.append(doc.doc_id)
            self._touch()

    def document_text(self, path: str) -> str | None:
        """The document's current text (the edited text for open documents, else the file on disk)."""
        with self._lock:
            doc = self.docs.get(path)
            if doc is not None and doc.text is not None:
                return doc.text
        return read_text_file(self.root / path, self.settings.max_file_bytes)

    def documents(self) -> list[str]:
        with self._lock:
            return sorted(self.docs)

    def chunks(self, path: str) -> list[Chunk]:
        """The document's chunks, in line order."""
        with self._lock:
            doc = self.docs.get(path)
            if doc is None:
                return []
            t = self.table
            return [Chunk(path, int(t.start[s]), int(t.end[s]), f"{int(t.digest[s]):016x}", KINDS[t.kind[s]],
                          t.symbols[s]) for s in doc.slots]

    def file_vector(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """The file's engram: the exact sum of its chunks' engrams (sparse int32 dims, int64 values)."""
        with self._lock:
            doc = self.docs[path]
            if doc.vector is None:
                doc.vector = self._sum_slots(doc.slots, +1)
            return doc.vector[0].copy(), doc.vector[1].copy()

    def folder_vector(self, folder: str) -> np.ndarray:
        """Dense int64 aggregate of a folder ('' is the workspace), shape (DIM,), computed when asked and cached
        until the index changes."""
        folder = folder.strip("/")
        with self._lock:
            cached = self._folder_cache.get(folder)
            if cached is not None and cached[0] == self._version:
                return cached[1].copy()
            agg = np.zeros(vsa.DIM, np.int64)
            prefix = folder + "/" if folder else ""
            for path in self.docs:
                if path.startswith(prefix):
                    dims, vals = self.file_vector(path)
                    agg[dims] += vals
            self._folder_cache[folder] = (self._version, agg)
            return agg.copy()

    # -- indexing -------------------------------------------------------------------------------------------------
    def index_workspace(self, progress: Callable[[int, int, str], None] | None = None,
                        cancelled: Callable[[], bool] | None = None) -> IndexSummary:
        """Brings the index up to date with the files on disk; re-encodes only files whose content changed.
        The lock is taken per file, so searches and edits interleave with a long index."""
        started = time.perf_counter()
        paths = list(walk_files(self.root, self.settings, skip=(store_mod.cache_root(),)))
        encoded = 0
        present = set()
        skipped: dict[str, int] = {}
        was_cancelled = False
        for n, path in enumerate(paths):
            if cancelled is not None and cancelled():
                was_cancelled = True
                break
            if progress is not None:
                progress(n, len(paths), path)
            present.add(path)
            full = self.root / path
            try:
                st = full.stat()
            except OSError:
                continue
            with self._lock:
                doc = self.docs.get(path)
                if doc is not None and (doc.text is not None or
                                        (doc.size == st.st_size and doc.mtime_ns == st.st_mtime_ns)):
                    continue  # open in the editor (the editor's text wins), or unchanged
            self._let_readers_in()
            text = read_text_file(full, self.settings.max_file_bytes)
            prepared = None
            if text is None:
                reason = "too large" if st.st_size > self.settings.max_file_bytes else "binary"
                skipped[reason] = skipped.get(reason, 0) + 1
            elif doc is None or doc.sha != sha_of(text):
                prepared = _prepare(path, text, count=doc is None)     # the costly part, without the lock
            self._let_readers_in()
            with self._lock:
                if text is None:
                    self.remove_document(path)
                    continue
                doc = self.docs.get(path)
                if doc is not None and doc.text is not None:
                    continue       # the editor opened it meanwhile: its text wins
                if prepared is None and doc is None:   # removed meanwhile (the editor deleted it)
                    continue
                if prepared is None or (doc is not None and doc.sha == prepared.sha):
                    doc.size, doc.mtime_ns = st.st_size, st.st_mtime_ns
                    continue
                self._index_prepared(path, prepared, st.st_size, st.st_mtime_ns)
                encoded += 1
                if self.table.needs_rebuild():  # searches during a long index use postings, not a scan of it all
                    self.table.build_postings(self.features.size)
        removed = 0
        if not was_cancelled:
            with self._lock:
                for path in [p for p, d in self.docs.items() if p not in present and d.text is None]:
                    self.remove_document(path)
                    removed += 1
        with self._lock:
            if encoded or removed or self.table.fresh:
                self.table.build_postings(self.features.size)
            relearn = encoded or removed or not self.terms.words
        if relearn:
            self.refresh_semantic()
        if encoded or removed:
            with self._lock:
                self.table.shrink()
                self.features.shrink()
            _return_freed_memory()
        with self._lock:
            if progress is not None:
                progress(len(paths), len(paths), "")
            return IndexSummary(len(self.docs), len(self.table), time.perf_counter() - started, encoded, removed,
                                was_cancelled, skipped)

    def _let_readers_in(self) -> None:
        """Between the steps of a long index: while a search runs (or waits for the lock), wait for it to finish
        (at most ``READER_WAIT_S``). Python's lock is not fair, so a writer that takes it again at once can starve a
        waiting search; and a writer that merely computes competes with the search for the GIL, which then changes
        hands only every switch interval (5 ms), so a search of a few milliseconds took tens."""
        self._no_readers.wait(READER_WAIT_S)

    @contextmanager
    def _reading(self):
        """Marks a search as running, for ``_let_readers_in``."""
        with self._readers_lock:
            self._readers += 1
            self._no_readers.clear()
        try:
            yield
        finally:
            with self._readers_lock:
                self._readers -= 1
                if self._readers == 0:
                    self._no_readers.set()

    def refresh_file(self, path: str) -> None:
        """Re-reads one file from disk (didSave / watched-file change); removes it when gone or not indexable."""
        with self._lock:
            if not self.is_indexable(path):
                self.remove_document(path)
                return
            full = self.root / path
            text = read_text_file(full, self.settings.max_file_bytes)
            if text is None:
                self.remove_document(path)
                return
            st = full.stat()
            doc = self.docs.get(path)
            if doc is not None and doc.text is not None:
                doc.size, doc.mtime_ns = st.st_size, st.st_mtime_ns
                self.set_document(path, text)  # the saved text: incremental against the editor's
                return
            self._index_text(path, text, st.st_size, st.st_mtime_ns, keep_text=False)

    def close_document(self, path: str) -> None:
        """The editor closed the document: from now on the file on disk is the truth."""
        with self._lock:
            doc = self.docs.get(path)
            if doc is not None and doc.text is not None:
                doc.text = doc.lines = doc.data = doc.tree = None
                if (self.root / path).exists():
                    self.refresh_file(path)
                else:
                    self.remove_document(path)

    def settle(self) -> int:
        """Brings the syntax structure of edited documents up to date (incremental tree-sitter re-parse; only chunks
        whose span or text changed are re-encoded), rebuilds the postings when many slots are fresh, and refreshes
        the semantic layer when much has changed. Background work: returns how many documents it settled."""
        with self._lock:
            pending = [p for p, d in self.docs.items() if not d.settled]
            for path in pending:
                self._settle(path, self.docs[path])
            if self.table.needs_rebuild():
                self.table.build_postings(self.features.size)
            relearn = self._changed_since_semantic > SEMANTIC_REFRESH_SHARE * max(1, self.table.alive)
        if relearn:
            self.refresh_semantic()
        return len(pending)

    def refresh_semantic(self) -> None:
        """Re-learns the Random Indexing layer from every live chunk's words (background work). The words are
        gathered under the lock; the learning runs without it, so searches and edits go on meanwhile."""
        with self._lock:
            t = self.table
            ptr, words = kernels.word_features(t.live_slots(), t.feat_start, t.feat_len, t.feat_ids,
                                               self.features.role)
            names = self.features.word_list()
            seen = self._changed_since_semantic
        terms = TermSpace.learn_arrays(ptr, words, names)
        with self._lock:
            self.terms = terms
            self._changed_since_semantic = max(0, self._changed_since_semantic - seen)

    # -- internals: encoding --------------------------------------------------------------------------------------
    def _doc_id(self, path: str) -> int:
        if self._free_doc_ids:
            i = self._free_doc_ids.pop()
            self.doc_paths[i] = path
            return i
        self.doc_paths.append(path)
        return len(self.doc_paths) - 1

    def _touch(self) -> None:
        self._version += 1

    def _drop(self, slot: int) -> None:
        self.features.count(self.table.remove(slot), -1)
        self._changed_since_semantic += 1

    def _encode_spans(self, path: str, doc: Document, lines: list[str], spans, has_pem: bool,
                      texts: list[str] | None = None, counted: list | None = None) -> list[int]:
        if texts is None:
            texts = _redacted_texts(lines, spans, has_pem)
        ids_list, w_list, norms, lex = encode_chunks(self.features, texts, path_words(path), counted)
        slots = []
        for (start, end, kind, symbol), text, ids, w, n, ln in zip(spans, texts, ids_list, w_list, norms, lex):
            slots.append(self.table.add(doc.doc_id, start, end, kind, symbol, digest_int(text), ids, w, n, ln))
        self._changed_since_semantic += len(slots)
        return slots

    def _sum_slots(self, slots, sign: int) -> tuple[np.ndarray, np.ndarray]:
        """Sum of the slots' engrams (sparse), times ``sign``."""
        if not len(slots):
            return np.empty(0, np.int32), np.empty(0, np.int64)
        parts = [self.table.features(s) for s in slots]
        ids = np.concatenate([p[0] for p in parts])
        w = np.concatenate([p[1] for p in parts]).astype(np.int64) * sign
        return vsa.bundle(self.features.hv[ids], w)

    def _replace_slots(self, doc: Document, removed: list[int], added: list[int]) -> None:
        """Updates the file aggregate by the sparse delta (added - removed), then frees the removed slots."""
        if doc.vector is not None and (removed or added):
            delta_dims, delta_vals = [doc.vector[0]], [doc.vector[1]]
            for slots, sign in ((removed, -1), (added, +1)):
                if slots:
                    d, v = self._sum_slots(slots, sign)
                    delta_dims.append(d)
                    delta_vals.append(v)
            doc.vector = vsa.sparse_sum(np.concatenate(delta_dims), np.concatenate(delta_vals))
        for s in removed:
            self._drop(s)
        self._touch()

    def _index_prepared(self, path: str, p: _Prepared, size: int, mtime_ns: int) -> None:
        """Commits a closed file's prepared chunks (under the lock), keeping those whose span and text did not
        change."""
        doc = self.docs.get(path)
        if doc is None:
            doc = self.docs[path] = Document(self._doc_id(path), "", 0, 0)
        doc.text = doc.lines = doc.data = doc.tree = None
        doc.sha, doc.size, doc.mtime_ns = p.sha, size, mtime_ns
        self._rechunk(path, doc, p.lines, p.spans, False, p.texts, p.counted)
        doc.settled = True

    def _index_text(self, path: str, text: str, size: int, mtime_ns: int, keep_text: bool) -> None:
        """Chunks and encodes a whole document, keeping the chunks whose span and text did not change."""
        if not keep_text:
            doc = self.docs.get(path)
            self._index_prepared(path, _prepare(path, text, count=doc is None or not doc.slots), size, mtime_ns)
            return
        norm = normalise(text)
        lines = split_lines(norm)
        doc = self.docs.get(path)
        if doc is None:
            doc = self.docs[path] = Document(self._doc_id(path), "", 0, 0)
        parser = parser_for(path)
        data = norm.encode("utf-8", "surrogatepass")
        tree = parser.parse(data) if parser is not None else None
        doc.text, doc.lines, doc.data, doc.tree = text, lines, data, tree
        doc.sha, doc.size, doc.mtime_ns = sha_of(text), size, mtime_ns
        self._rechunk(path, doc, lines, spans_for(path, lines, tree), _PEM_MARK in norm)
        doc.settled = True

    def _rechunk(self, path: str, doc: Document, lines: list[str], spans, has_pem: bool,
                 texts: list[str] | None = None, counted: list | None = None) -> None:
        """Makes the document's chunks equal to ``spans``: unchanged chunks (same span, kind, symbol and text) keep
        their slots; the rest are encoded (``texts``, ``counted``: the spans' redacted texts and feature counts,
        when already known)."""
        t = self.table
        if texts is None:
            texts = _redacted_texts(lines, spans, has_pem)
        existing = {}
        for s in doc.slots:
            existing.setdefault((int(t.start[s]), int(t.end[s]), KINDS[t.kind[s]], t.symbols[s], int(t.digest[s])),
                                []).append(s)
        keep: dict[int, int] = {}
        todo = []
        for i, (span, text) in enumerate(zip(spans, texts)):
            pool = existing.get((span[0], span[1], span[2], span[3], digest_int(text)))
            if pool:
                keep[i] = pool.pop()
            else:
                todo.append(i)
        removed = [s for pool in existing.values() for s in pool]
        new_slots = self._encode_spans(path, doc, lines, [spans[i] for i in todo], has_pem, [texts[i] for i in todo],
                                       [counted[i] for i in todo] if counted is not None else None) if todo else []
        added = dict(zip(todo, new_slots))
        doc.slots = [keep[i] if i in keep else added[i] for i in range(len(spans))]
        self._replace_slots(doc, removed, new_slots)

    # -- internals: the incremental path --------------------------------------------------------------------------
    def _edit(self, path: str, doc: Document, text: str) -> bool:
        """The keystroke path. Returns False when the change is too large for it (the caller re-chunks). Whole-file
        steps are single C or numpy passes (encode, diff, newline offsets, span shifts); Python loops run only over
        the few chunks the change touches."""
        norm = normalise(text)
        data = norm.encode("utf-8", "surrogatepass")
        change = diff(doc.data, data)
        if change is None:
            doc.text = text
            return True
        if not doc.slots:
            return False
        t = self.table
        first, old_last, new_last = change.start + 1, change.old_end + 1, change.new_end + 1
        slots = np.asarray(doc.slots, np.int64)
        starts, ends = t.start[slots].astype(np.int64), t.end[slots].astype(np.int64)
        touched = np.flatnonzero((starts <= old_last) & (ends >= first))
        if not len(touched):                 # typed between chunks: the chunk above (or below) takes the lines
            above = np.flatnonzero(ends < first)
            touched = above[-1:] if len(above) else np.zeros(1, np.int64)
        if len(touched) > FAST_PATH_MAX_CHUNKS:
            return False
        # the new lines start..new_end: from the newline before the prefix's end to the one at or after the suffix's
        # start (the diff counted the newlines up to both, so these are the same lines; no per-byte pass)
        begin = data.rfind(b"\n", 0, change.prefix) + 1
        stop = data.find(b"\n", len(data) - change.suffix)
        stop = len(data) if stop < 0 else stop
        # exactly new_end - start + 1 lines (a blank last line is a line); only the document's final "" is dropped
        lines = doc.lines[:change.start] + data[begin:stop].decode("utf-8", "surrogatepass").split("\n") + \
            doc.lines[change.old_end + 1:]
        if len(lines) > data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1):
            lines.pop()
        if doc.tree is not None:
            self._edit_tree(doc, data, change)
        # shift every span at once (the touched ones are re-encoded below)
        t.start[slots], t.end[slots] = map_lines(starts, change, False), map_lines(ends, change, True)
        s0, s1 = slots[touched[0]], slots[touched[-1]]
        if t.start[s0] > first:
            t.start[s0] = first
        if t.end[s1] < new_last:
            t.end[s1] = new_last
        doc.text, doc.lines, doc.data = text, lines, data
        doc.sha, doc.size = "", len(text)  # an open document's hash is never read; closing it re-reads the file
        spans, old = [], []
        for s in slots[touched].tolist():
            start, end = int(t.start[s]), min(int(t.end[s]), len(lines))
            if end >= start:
                spans.append((start, end, KINDS[t.kind[s]], t.symbols[s]))
            old.append(s)
        new_slots = self._encode_spans(path, doc, lines, spans, _PEM_MARK in norm) if spans else []
        keep = np.delete(slots, touched)
        merged = np.concatenate([keep, np.asarray(new_slots, np.int64)])
        doc.slots = merged[np.lexsort((t.end[merged], t.start[merged]))].tolist()
        self._replace_slots(doc, old, new_slots)
        doc.settled = False
        return True

    @staticmethod
    def _point(buf: bytes, row: int, offset: int) -> tuple[int, int]:
        """(row, byte column) of a byte offset on a known row, as tree-sitter counts them."""
        return row, offset - (buf.rfind(b"\n", 0, offset) + 1)

    def _edit_tree(self, doc: Document, data: bytes, change) -> None:
        """Tells the syntax tree about the edit (cheap: the byte range and rows come from the diff); the re-parse
        itself waits for ``settle``."""
        old, p, s = doc.data, change.prefix, change.suffix
        doc.tree.edit(start_byte=p, old_end_byte=len(old) - s, new_end_byte=len(data) - s,
                      start_point=self._point(old, change.start, p),
                      old_end_point=self._point(old, change.old_end, len(old) - s),
                      new_end_point=self._point(data, change.new_end, len(data) - s))

    def _settle(self, path: str, doc: Document) -> None:
        if doc.lines is None:
            doc.settled = True
            return
        tree = None
        parser = parser_for(path)
        if parser is not None:
            tree = parser.parse(doc.data, doc.tree) if doc.tree is not None else parser.parse(doc.data)
            if tree.root_node.has_error:
                tree = parser.parse(doc.data)   # error recovery can depend on history: keep rebuilds identical
            doc.tree = tree
        self._rechunk(path, doc, doc.lines, spans_for(path, doc.lines, tree), _PEM_MARK.encode() in doc.data)
        doc.settled = True

    # -- search ---------------------------------------------------------------------------------------------------
    def _scope_mask(self, scope: str) -> np.ndarray:
        scope = scope.strip().strip("/")
        glob = any(ch in scope for ch in "*?[")
        mask = np.zeros(self.table.n_slots, bool)
        for path, doc in self.docs.items():
            if (fnmatch.fnmatch(path, scope) or fnmatch.fnmatch(path, scope + "/*")) if glob else \
                    (path == scope or path.startswith(scope + "/") or scope == ""):
                mask[doc.slots] = True
        return mask

    def search(self, query: str, k: int = 10, scope: str | None = None) -> list[Hit]:
        """Top-k chunks for a natural-language or code query; ``scope`` is a folder prefix or a glob."""
        if not query.strip() or k <= 0:
            return []
        with self._reading():
            with self._lock:
                allowed = self._scope_mask(scope) if scope else None
                ranked = ranking.search(self.table, self.features, self.terms, query, k, allowed)
                found, open_texts = self._located(ranked)
            return self._hits(found, open_texts)

    def find_named(self, name: str, role: str = "d", k: int = 10, exclude_path: str | None = None) -> list[Hit]:
        """Chunks where ``name`` appears in a role — ``d`` defined, ``c`` called, ``a`` an attribute, ``m``
        imported, ``i`` anywhere as an identifier — found exactly through the role-tagged feature
        ``bind(role, name)`` (its postings, plus slots written since they were built); for ``c``, ``a`` and ``m``,
        chunks that define the name are left out. Smaller chunks first (the most specific unit: the function, not
        its module); ``exclude_path`` leaves out one document (the file being completed)."""
        if role not in ("d", "c", "a", "m", "i") or not name or k <= 0:
            return []
        with self._reading():
            return self._find_named(name, role, k, exclude_path)

    def _find_named(self, name: str, role: str, k: int, exclude_path: str | None) -> list[Hit]:
        with self._lock:
            fid = self.features.lookup(f"{role}:{name.lower()}")
            if fid < 0:
                return []
            t = self.table
            slots = set()
            if fid + 1 < len(t.ptr):
                base = t.post_slot[t.ptr[fid]:t.ptr[fid + 1]]
                slots.update(base[t.in_base[base]].tolist())   # a slot freed and reused since is fresh instead
            for s in t.fresh:
                if fid in t.features(s)[0]:
                    slots.add(s)
            skip = self.docs[exclude_path].doc_id if exclude_path in self.docs else -1
            chosen = [s for s in slots if t.live[s] and t.doc[s] != skip]
            defining = self.features.lookup(f"d:{name.lower()}") if role in "cam" else -1
            if defining >= 0:  # ``def f(`` reads as a call of f too: the definition is found with role "d"
                chosen = [s for s in chosen if defining not in t.features(s)[0]]
            chosen.sort(key=lambda s: (int(t.end[s] - t.start[s]), self.doc_paths[t.doc[s]], int(t.start[s])))
            found, open_texts = self._located([(s, 1.0) for s in chosen[:k]])
        return self._hits(found, open_texts)

    def _located(self, ranked: list[tuple[int, float]]) -> tuple[list, dict]:
        """(path, start, end, score) of ranked slots and the open documents' lines (under the lock)."""
        t = self.table
        found = [(self.doc_paths[t.doc[s]], int(t.start[s]), int(t.end[s]), score) for s, score in ranked]
        return found, {p: self.docs[p].lines for p, *_ in found if self.docs[p].lines is not None}

    def _hits(self, found: list, open_texts: dict) -> list[Hit]:
        """Hits with their redacted text; files not open in the editor are read outside the lock."""
        hits = []
        texts: dict[str, list[str] | None] = dict(open_texts)
        for path, start, end, score in found:
            if path not in texts:
                texts[path] = self._file_lines(path)
            lines = texts[path]
            body = redact(chunk_text(lines, start, end)) if lines is not None else ""
            hits.append(Hit(path, start, end, round(score, 6), body))
        return hits

    def _file_lines(self, path: str) -> list[str] | None:
        """A closed file's lines for hit texts, from a small cache checked against the file's mtime and size (a
        search reads its hits' files; the same few files answer query after query while one types)."""
        full = self.root / path
        try:
            st = full.stat()
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lines_lock:
            cached = self._lines_cache.get(path)
            if cached is not None and cached[0] == stamp:
                self._lines_cache.move_to_end(path)
                return cached[1]
        text = read_text_file(full, self.settings.max_file_bytes)
        lines = split_lines(normalise(text)) if text is not None else None
        with self._lines_lock:
            self._lines_cache[path] = (stamp, lines)
            self._lines_cache.move_to_end(path)
            while len(self._lines_cache) > LINES_CACHE_FILES:
                self._lines_cache.popitem(last=False)
        return lines

    # -- persistence ----------------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """A plain, self-contained copy of what the store keeps (files as on disk; editor buffers are not kept).
        Only copies are taken under the lock; sorting, remapping and the postings are computed after it is
        released, so a save never holds up a search or an edit for longer than a memcpy of the columns."""
        with self._lock:
            t, f = self.table, self.features
            paths = sorted(p for p, d in self.docs.items() if d.text is None)
            slots = np.fromiter((s for p in paths for s in self.docs[p].slots), np.int64)
            docs = {"paths": paths, "sha": [self.docs[p].sha for p in paths],
                    "size": np.array([self.docs[p].size for p in paths], np.int64),
                    "mtime": np.array([self.docs[p].mtime_ns for p in paths], np.int64),
                    "chunks": np.fromiter((len(self.docs[p].slots) for p in paths), np.int64, len(paths))}
            lens = t.feat_len[slots].astype(np.int64)
            ids, feat_w = kernels.gather(slots, t.feat_start, t.feat_len, t.feat_ids, t.feat_w)
            chunks = {name: getattr(t, name)[slots]
                      for name in ("start", "end", "kind", "digest", "norm", "lex_norm", "length")}
            symbols = [t.symbols[s] for s in slots.tolist()]
            key, hv, role = f.key[:f.size].copy(), f.hv[:f.size].copy(), f.role[:f.size].copy()
            words = dict(f.words)
        used = kernels.used_ids(ids, len(key))
        used = used[np.argsort(key[used], kind="stable")]       # stored in key order: no sort at open
        new_id = np.zeros(len(key), np.int32)                    # old feature id -> its rank in key order
        new_id[used] = np.arange(len(used), dtype=np.int32)
        compact = kernels.remap(ids, new_id)
        starts = np.zeros(len(slots), np.int64)
        if len(slots):
            np.cumsum(lens[:-1], out=starts[1:])
        # the postings are stored too, so that opening a store is reading arrays, not rebuilding them
        ptr, post_slot, post_w = kernels.transpose(np.arange(len(slots), dtype=np.int64), starts, lens, compact,
                                                   feat_w, max(1, len(used)))
        return {
            "root": str(self.root),
            "features": {"keys": key[used], "hv": hv[used], "role": role[used], **_used_words(used, words)},
            "docs": docs, "chunks": chunks, "symbols": symbols,
            "feat_len": lens.astype(np.int32), "feat_ids": compact, "feat_w": feat_w,
            "postings": {"ptr": ptr, "slot": post_slot, "w": post_w},
        }

    def _restore(self, snap: dict) -> None:
        self._reset()
        f = snap["features"]
        self.features = FeatureTable.from_state(f["keys"], f["hv"], f["role"], f["word_ids"], f["words"])
        t = self.table
        feat_ids, feat_w, feat_len = snap["feat_ids"], snap["feat_w"], snap["feat_len"].astype(np.int64)
        n = len(feat_len)
        t._grow_rows(n)
        t._grow_arena(len(feat_ids))
        t.feat_ids[:len(feat_ids)] = feat_ids
        t.feat_w[:len(feat_w)] = feat_w
        t.arena_used = len(feat_ids)
        starts = np.zeros(n, np.int64)
        if n:
            np.cumsum(feat_len[:-1], out=starts[1:])
        t.feat_start[:n], t.feat_len[:n] = starts, feat_len
        for name, col in snap["chunks"].items():
            getattr(t, name)[:n] = col
        t.live[:n] = True
        if len(snap["symbols"]) != n:  # the name channel reads a symbol for every slot
            raise ValueError(f"the store names {len(snap['symbols'])} symbols for {n} chunks")
        t.symbols = list(snap["symbols"])
        t.n_slots = t.alive = n
        t.total_length = int(t.length[:n].sum())
        self.features.df[:self.features.size] = np.bincount(feat_ids, minlength=self.features.size)
        d = snap["docs"]
        pos = 0
        for path, sha, size, mtime, count in zip(d["paths"], d["sha"], d["size"].tolist(), d["mtime"].tolist(),
                                                  d["chunks"].tolist()):
            doc = Document(self._doc_id(path), sha, size, mtime, list(range(pos, pos + count)))
            t.doc[pos:pos + count] = doc.doc_id
            self.docs[path] = doc
            pos += count
        p = snap["postings"]
        if len(p["ptr"]) != self.features.size + 1 and not (n == 0 and len(p["ptr"]) == 2):
            raise ValueError(f"postings cover {len(p['ptr']) - 1} features, the store has {self.features.size}")
        t.ptr, t.post_slot, t.post_w = p["ptr"].copy(), p["slot"].copy(), p["w"].copy()  # not views of the file
        t.in_base[:n] = True
        # the semantic layer is not re-learnt here (a second on a large workspace, on the path to the first
        # answer): the index_workspace() that follows every open re-learns it, since it is empty

    def _stored_stamp(self) -> int:
        """A fingerprint of what the store keeps: the closed files (an open document's buffer is never stored, and a
        file's chunks follow from its text)."""
        with self._lock:
            return hash(tuple((p, d.sha, d.size, d.mtime_ns) for p, d in sorted(self.docs.items()) if d.text is None))

    def save(self) -> bool:
        """Writes the store atomically (a snapshot is taken under the lock, and written without it) — unless
        nothing it keeps changed since it was last written or read: a save of an open file (didSave) rewrote an
        identical store of every closed file. Returns whether it wrote."""
        stamp = self._stored_stamp()
        if stamp == self._saved_stamp and self.store_path.exists():
            return False
        store_mod.save(self.store_path, self.snapshot())
        self._saved_stamp = stamp    # taken before the snapshot: a change in between only causes one more write
        return True

    def stats(self) -> dict:
        """Sizes, read without the lock (approximate while indexing) so a status request never waits on it."""
        size = self.store_path.stat().st_size if self.store_path.exists() else 0
        return {"root": str(self.root), "files": len(self.docs), "chunks": len(self.table),
                "features": len(self.features), "dim": vsa.DIM, "store_path": str(self.store_path),
                "store_bytes": size, "index_bytes": self.table.nbytes()}
