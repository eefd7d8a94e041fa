"""``Engram``: one workspace's engrams, kept current document by document, searched with citations.

Holds the chunk table, per-document state, and the hierarchy of exact aggregates (file -> folder -> workspace).
Each aggregate is a sum of integer engrams updated as ``new = old - removed + added``; search ranks chunks, and the
hierarchy only scopes and nudges — never one saturated superposition.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import store as store_mod
from . import vsa
from .chunking import Chunk, chunk_spans, chunk_text, digest_of, lines_of
from .encoder import Vocabulary, chunk_weights, encode, idf, norms, probe
from .features import code_features, query_features
from .index import ChunkRecord, ChunkTable
from .secrets import redact
from .semantic import TermSpace
from .settings import IndexSettings
from .walk import WorkspaceFilter, is_binary, read_text_file, walk_files

EXPANSION_WEIGHT = 0.35


@dataclass(frozen=True)
class Hit:
    """A search result: ``start_line``..``end_line`` are 1-based, inclusive; ``text`` has secrets redacted."""

    path: str
    start_line: int
    end_line: int
    score: float
    text: str


@dataclass
class IndexSummary:
    files: int
    chunks: int
    seconds: float
    encoded_files: int
    removed_files: int
    cancelled: bool = False


@dataclass
class _Document:
    sha: str
    size: int
    mtime_ns: int
    slots: list[int] = field(default_factory=list)
    text: str | None = None          # kept for open (edited) documents; others are read back from disk
    dims: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))   # file aggregate
    vals: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _apply_change(text: str, start: tuple[int, int], end: tuple[int, int], new_text: str) -> str:
    """Replaces the range (0-based line, code-point column) in text; positions past the end are clamped."""
    lines = text.split("\n")

    def offset(pos: tuple[int, int]) -> int:
        line, col = pos
        if line < 0 or col < 0:
            raise ValueError(f"negative position {pos}")
        if line >= len(lines):
            return len(text)
        base = sum(len(l) + 1 for l in lines[:line])
        return base + min(col, len(lines[line]))

    a, b = offset(start), offset(end)
    if b < a:
        raise ValueError(f"range end {end} is before its start {start}")
    return text[:a] + new_text + text[b:]


class Engram:
    """A workspace's engram index. Thread-safe: every public method takes one lock."""

    def __init__(self, root: Path, settings: IndexSettings | None = None, cache_dir: Path | None = None):
        self.root = Path(root).resolve()
        self.settings = settings or IndexSettings()
        self.store_path = store_mod.store_path(self.root, cache_dir)
        self.load_warning: str | None = None
        self._lock = threading.RLock()
        self._filter = WorkspaceFilter(self.root, self.settings)
        self._reset()

    def _reset(self) -> None:
        self.vocab = Vocabulary()
        self.table = ChunkTable()
        self.docs: dict[str, _Document] = {}
        self.df: Counter = Counter()
        self.folders: dict[str, np.ndarray] = {}
        self.terms = TermSpace()
        self._terms_stale = True

    @classmethod
    def open(cls, root: Path, settings: IndexSettings | None = None, cache_dir: Path | None = None) -> "Engram":
        """Opens a workspace, loading its persisted store when it is valid (else ``load_warning`` says why)."""
        engram = cls(root, settings, cache_dir)
        engram.load_warning = store_mod.load(engram)
        return engram

    # -- documents ------------------------------------------------------------------------------------------------
    def is_indexable(self, path: str) -> bool:
        """Whether a relative path passes the ignore rules and the secret filter (size/binary are checked on read)."""
        return bool(path) and not path.startswith("../") and not self._filter.excluded(path)

    def set_document(self, path: str, text: str, keep_text: bool = True) -> None:
        """Replaces a document's content; only chunks whose text changed are re-encoded."""
        with self._lock:
            if "\0" in text[:8192] or len(text.encode("utf-8", "surrogatepass")) > self.settings.max_file_bytes:
                self.remove_document(path)
                return
            self._index_text(path, text, size=len(text), mtime_ns=0, keep_text=keep_text)

    def apply_edit(self, path: str, start: tuple[int, int], end: tuple[int, int], new_text: str) -> None:
        """Applies an LSP-style edit (0-based line, code-point column) to a document and updates its engrams."""
        with self._lock:
            current = self.document_text(path)
            if current is None:
                raise KeyError(f"document not in the index: {path}")
            self.set_document(path, _apply_change(current, start, end, new_text))

    def remove_document(self, path: str) -> None:
        with self._lock:
            doc = self.docs.pop(path, None)
            if doc is None:
                return
            for slot in doc.slots:
                self._drop_slot(slot)
            self._update_folders(path, doc.dims, doc.vals, -1)
            self._terms_stale = True

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
            out = []
            for s in doc.slots:
                r = self.table.records[s]
                out.append(Chunk(path, r.start_line, r.end_line, r.digest, r.kind, r.symbol))
            return out

    def file_vector(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            doc = self.docs[path]
            return doc.dims.copy(), doc.vals.copy()

    def folder_vector(self, folder: str) -> np.ndarray:
        """Dense int64 aggregate of a folder ('' is the workspace), shape (DIM,)."""
        with self._lock:
            return self.folders.get(folder, np.zeros(vsa.DIM, np.int64)).copy()

    # -- indexing -------------------------------------------------------------------------------------------------
    def index_workspace(self, progress: Callable[[int, int, str], None] | None = None,
                        cancelled: Callable[[], bool] | None = None) -> IndexSummary:
        """Brings the index up to date with the files on disk; re-encodes only files whose content changed."""
        started = time.perf_counter()
        paths = list(walk_files(self.root, self.settings, skip=(store_mod.cache_root(),)))
        encoded = 0
        present = set()
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
                if doc is not None and doc.text is not None:
                    continue  # open in the editor: the editor's text wins
                if doc is not None and doc.size == st.st_size and doc.mtime_ns == st.st_mtime_ns:
                    continue
            text = read_text_file(full, self.settings.max_file_bytes)
            with self._lock:
                if text is None:
                    self.remove_document(path)
                    continue
                if doc is not None and doc.sha == _sha(text):
                    doc.size, doc.mtime_ns = st.st_size, st.st_mtime_ns
                    continue
                self._index_text(path, text, st.st_size, st.st_mtime_ns, keep_text=False)
                encoded += 1
        removed = 0
        if not was_cancelled:
            with self._lock:
                for path in [p for p, d in self.docs.items() if p not in present and d.text is None]:
                    self.remove_document(path)
                    removed += 1
        with self._lock:
            self.table.build_postings()
            self._refresh_terms()
            if progress is not None:
                progress(len(paths), len(paths), "")
            return IndexSummary(len(self.docs), len(self.table), time.perf_counter() - started, encoded, removed,
                                was_cancelled)

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
            self._index_text(path, text, st.st_size, st.st_mtime_ns, keep_text=False)

    def close_document(self, path: str) -> None:
        """The editor closed the document: from now on the file on disk is the truth."""
        with self._lock:
            doc = self.docs.get(path)
            if doc is not None and doc.text is not None:
                doc.text = None
                if (self.root / path).exists():
                    self.refresh_file(path)
                else:
                    self.remove_document(path)

    def _index_text(self, path: str, text: str, size: int, mtime_ns: int, keep_text: bool) -> None:
        clean = redact(text)
        lines = lines_of(clean)
        spans = chunk_spans(path, clean)
        old = self.docs.get(path)
        reusable: dict[str, list[int]] = {}
        if old is not None:
            for s in old.slots:
                reusable.setdefault(self.table.records[s].digest, []).append(s)
        new_slots = []
        for start, end, kind, symbol in spans:
            body = chunk_text(lines, start, end)
            digest = digest_of(body)
            pool = reusable.get(digest)
            if pool:
                slot = pool.pop(0)
                r = self.table.records[slot]
                r.start_line, r.end_line, r.kind, r.symbol = start, end, kind, symbol
            else:
                slot = self._encode_chunk(path, start, end, digest, kind, symbol, body)
            new_slots.append(slot)
        for slots in reusable.values():
            for s in slots:
                self._drop_slot(s)
        dims, vals = self._file_sum(new_slots)
        if old is not None:
            self._update_folders(path, old.dims, old.vals, -1)
        self._update_folders(path, dims, vals, +1)
        self.docs[path] = _Document(_sha(text), size, mtime_ns, new_slots, text if keep_text else None, dims, vals)
        self._terms_stale = True
        if len(self.vocab) > 2 * len(self.df) + 20_000:
            self._compact_vocab()

    def _compact_vocab(self) -> None:
        """Drops features no live chunk uses. Typing creates a stream of transient identifiers (``fo``, ``foo``,
        ``foob``…); without this the vocabulary would grow for as long as the server runs."""
        used = sorted(self.df)
        remap = np.full(len(self.vocab), -1, np.int64)
        remap[used] = np.arange(len(used))
        fresh = Vocabulary()
        fresh.names = [self.vocab.names[i] for i in used]
        fresh.ids = {name: i for i, name in enumerate(fresh.names)}
        fresh._dims = [self.vocab.dims_of(i) for i in used]
        for r in self.table.records:
            if r is not None:
                r.ids = remap[r.ids].astype(np.int32)
        self.df = Counter({int(remap[f]): c for f, c in self.df.items()})
        self.vocab = fresh

    def _encode_chunk(self, path, start, end, digest, kind, symbol, body) -> int:
        counts = code_features(body, path)
        ids, weights = chunk_weights(counts, self.vocab)
        dims, vals = encode(ids, weights, self.vocab)
        for fid in ids:
            self.df[int(fid)] += 1
        full, lexical = norms(ids, weights, vals, self.vocab)
        return self.table.add(ChunkRecord(path, start, end, digest, kind, symbol, ids, weights, dims, vals, full,
                                          lexical, int(weights.sum())))

    def _drop_slot(self, slot: int) -> None:
        r = self.table.records[slot]
        if r is None:
            return
        for fid in r.ids:
            fid = int(fid)
            self.df[fid] -= 1
            if self.df[fid] <= 0:
                del self.df[fid]
        self.table.remove(slot)

    def _file_sum(self, slots: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if not slots:
            return np.empty(0, np.int32), np.empty(0, np.int64)
        dims = np.concatenate([self.table.records[s].dims for s in slots]).astype(np.int64)
        vals = np.concatenate([self.table.records[s].vals for s in slots]).astype(np.int64)
        uniq, inv = np.unique(dims, return_inverse=True)
        sums = np.zeros(len(uniq), np.int64)
        np.add.at(sums, inv, vals)
        keep = sums != 0
        return uniq[keep].astype(np.int32), sums[keep]

    def _update_folders(self, path: str, dims: np.ndarray, vals: np.ndarray, sign: int) -> None:
        parts = path.split("/")[:-1]
        for depth in range(len(parts) + 1):
            folder = "/".join(parts[:depth])
            agg = self.folders.get(folder)
            if agg is None:
                agg = self.folders[folder] = np.zeros(vsa.DIM, np.int64)
            np.add.at(agg, dims.astype(np.int64), sign * vals.astype(np.int64))
            if sign < 0 and not agg.any():
                del self.folders[folder]

    def _refresh_terms(self) -> None:
        if not self._terms_stale:
            return
        words = []
        names = self.vocab.names
        for r in self.table.records:
            if r is not None:
                words.append([names[i][2:] for i in r.ids if names[i].startswith("t:")])
        self.terms = TermSpace.learn(words)
        self._terms_stale = False

    # -- search ---------------------------------------------------------------------------------------------------
    def _probe_weights(self, query: str) -> dict[str, float]:
        counts = query_features(query)
        n = max(1, len(self.table))
        weighted: dict[str, float] = {}
        for f, c in counts.items():
            fid = self.vocab.ids.get(f)
            df = self.df.get(fid, 0) if fid is not None else 0
            weighted[f] = idf(df, n) * (1.0 + math.log(c)) * {"d": 1.5, "i": 1.0}.get(f[0], 1.0)
        strongest = sorted((f for f in weighted if f.startswith("t:")), key=lambda f: -weighted[f])[:4]
        for f in strongest:  # the semantic layer widens the query's rarest words
            for word, sim in self.terms.neighbours(f[2:]):
                g = "t:" + word
                if g not in counts:
                    fid = self.vocab.ids.get(g)
                    df = self.df.get(fid, 0) if fid is not None else 0
                    weighted[g] = max(weighted.get(g, 0.0), EXPANSION_WEIGHT * sim * idf(df, n))
        return weighted

    def _scope_slots(self, scope: str) -> set[int]:
        scope = scope.strip().strip("/")
        glob = any(ch in scope for ch in "*?[")
        slots: set[int] = set()
        for path, doc in self.docs.items():
            if (fnmatch.fnmatch(path, scope) or fnmatch.fnmatch(path, scope + "/*")) if glob else \
                    (path == scope or path.startswith(scope + "/") or scope == ""):
                slots.update(doc.slots)
        return slots

    def search(self, query: str, k: int = 10, scope: str | None = None) -> list[Hit]:
        """Top-k chunks for a natural-language or code query; ``scope`` is a folder prefix or a glob."""
        with self._lock:
            if not query.strip() or k <= 0:
                return []
            self._refresh_terms()
            weights = self._probe_weights(query)
            qdims, qvals = probe(weights, self.vocab)
            known = {f: w for f, w in weights.items() if self.df.get(self.vocab.ids.get(f, -1), 0) > 0}
            allowed = self._scope_slots(scope) if scope else None
            natural = all(f.startswith(("t:", "i:")) for f in weights)
            ids = np.array([self.vocab.ids[f] for f in known], np.int32)
            order = np.argsort(ids)
            terms = (ids[order], np.array(list(known.values()), np.float64)[order])
            ranked = self.table.search(qdims, qvals, k, allowed, seed=probe(known, self.vocab), lexical=natural,
                                       terms=terms)
            hits = []
            texts: dict[str, list[str] | None] = {}
            for slot, score in ranked:
                r = self.table.records[slot]
                if r.path not in texts:
                    text = self.document_text(r.path)
                    texts[r.path] = lines_of(text) if text is not None else None
                lines = texts[r.path]
                body = redact(chunk_text(lines, r.start_line, r.end_line)) if lines is not None else ""
                hits.append(Hit(r.path, r.start_line, r.end_line, round(score, 6), body))
            return hits

    # -- persistence ----------------------------------------------------------------------------------------------
    def save(self) -> None:
        """Writes the store atomically (temporary file + rename)."""
        with self._lock:
            store_mod.save(self)

    def stats(self) -> dict:
        """Sizes, read without the lock (approximate while indexing) so a status request never waits on it."""
        size = self.store_path.stat().st_size if self.store_path.exists() else 0
        return {"root": str(self.root), "files": len(self.docs), "chunks": len(self.table),
                "features": len(self.df), "dim": vsa.DIM, "store_path": str(self.store_path), "store_bytes": size}
