"""The persisted engram store: one file per workspace under the user cache dir.

Layout: ``MAGIC`` (8 bytes) | format version (u32, little-endian) | SHA-256 of the payload (32 bytes) | payload.
The payload is msgpack: the feature vocabulary and, per file, its content hash, size, mtime and chunks (line range,
digest, kind, symbol, feature ids and weights as raw little-endian arrays). Engrams are recomputed from features on
load, which keeps the store small and the hypervectors defined in one place. No chunk text is stored, so the store
never holds the workspace's text (or its secrets).

Writes go to a temporary file that is fsynced and renamed over the old store, so a crash leaves the old or the new
store, never half of one. A store that is truncated, fails its checksum, or has another format version is reported
in one line and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import msgpack
import numpy as np
import platformdirs

if TYPE_CHECKING:
    from .engram import Engram

MAGIC = b"ENGRAMLS"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sI32s")
STORE_NAME = "engram.store"


class StoreError(Exception):
    """The store cannot be used; the message is one line saying why."""


def cache_root(cache_dir: Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("ENGRAM_LS_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("engram-ls"))


def store_path(root: Path, cache_dir: Path | None = None) -> Path:
    key = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / "stores" / key / STORE_NAME


def encode_payload(engram: "Engram") -> bytes:
    """Packs the store piece by piece: many short msgpack calls, so a big store never holds the GIL for long
    (the language server's event loop keeps answering while a save runs on the encoder thread)."""
    used: dict[int, int] = {}
    names = engram.vocab.names
    packer = msgpack.Packer(use_bin_type=True, autoreset=True)
    docs = []
    for path, doc in list(engram.docs.items()):
        if doc.text is not None and doc.mtime_ns == 0:
            continue  # unsaved editor buffers are not persisted; the file on disk is re-read next time
        chunks = []
        for s in doc.slots:
            r = engram.table.records[s]
            ids = np.array([used.setdefault(int(i), len(used)) for i in r.ids], dtype="<u4")
            chunks.append([r.start_line, r.end_line, r.digest, r.kind, r.symbol, ids.tobytes(),
                           r.weights.astype("<i2").tobytes()])
        docs.append(packer.pack(path) + packer.pack([doc.sha, doc.size, doc.mtime_ns, chunks]))
    vocab = [None] * len(used)
    for old, new in used.items():
        vocab[new] = names[old]
    parts = [packer.pack_map_header(3), packer.pack("root"), packer.pack(str(engram.root)), packer.pack("vocab"),
             packer.pack_array_header(len(vocab))]
    parts.extend(packer.pack(v) for v in vocab)
    parts.append(packer.pack("docs"))
    parts.append(packer.pack_map_header(len(docs)))
    parts.extend(docs)
    return b"".join(parts)


def save(engram: "Engram") -> None:
    payload = encode_payload(engram)
    path = engram.store_path
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, hashlib.sha256(payload).digest())
    fd, tmp = tempfile.mkstemp(prefix=".engram-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_payload(path: Path) -> dict:
    """The decoded payload, or StoreError with one line saying what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StoreError(f"engram store {path} is unreadable ({e.strerror or e})") from None
    if len(data) < _HEADER.size:
        raise StoreError(f"engram store {path} is truncated ({len(data)} bytes)")
    magic, version, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise StoreError(f"engram store {path} is not an engram-ls store")
    if version != FORMAT_VERSION:
        raise StoreError(f"engram store {path} has format version {version}; this engram-ls reads {FORMAT_VERSION}")
    payload = data[_HEADER.size:]
    if hashlib.sha256(payload).digest() != digest:
        raise StoreError(f"engram store {path} is corrupt (checksum mismatch)")
    try:
        body = msgpack.unpackb(payload, raw=False)
        if not isinstance(body, dict) or not isinstance(body.get("docs"), dict):
            raise ValueError("bad layout")
    except Exception as e:  # a checksummed but malformed payload: written by a broken build
        raise StoreError(f"engram store {path} is malformed ({e})") from None
    return body


def load(engram: "Engram") -> str | None:
    """Fills ``engram`` from its store. Returns None, or one line saying why the store was discarded."""
    path = engram.store_path
    if not path.exists():
        return None
    try:
        body = read_payload(path)
        if body.get("root") != str(engram.root):
            raise StoreError(f"engram store {path} belongs to another workspace ({body.get('root')})")
        _restore(engram, body)
    except StoreError as e:
        engram._reset()
        return f"{e}; rebuilding the index"
    except Exception as e:  # never a crash, never silently wrong: start empty and say so
        engram._reset()
        return f"engram store {path} could not be loaded ({type(e).__name__}: {e}); rebuilding the index"
    return None


def _restore(engram: "Engram", body: dict) -> None:
    from .encoder import encode, norms
    from .index import ChunkRecord
    from .engram import _Document

    vocab_names = body["vocab"]
    engram.vocab.extend(vocab_names)
    remap = np.array([engram.vocab.ids[n] for n in vocab_names], dtype=np.int32)
    for path, (sha, size, mtime_ns, chunks) in body["docs"].items():
        slots = []
        for start, end, digest, kind, symbol, ids_raw, weights_raw in chunks:
            ids = remap[np.frombuffer(ids_raw, dtype="<u4").astype(np.int64)]
            weights = np.frombuffer(weights_raw, dtype="<i2").astype(np.int16)
            dims, vals = encode(ids, weights, engram.vocab)
            for fid in ids:
                engram.df[int(fid)] += 1
            full, lexical = norms(ids, weights, vals, engram.vocab)
            slots.append(engram.table.add(ChunkRecord(path, start, end, digest, kind, symbol, ids, weights,
                                                      dims, vals, full, lexical, int(weights.sum()))))
        dims, vals = engram._file_sum(slots)
        engram._update_folders(path, dims, vals, +1)
        engram.docs[path] = _Document(sha, size, mtime_ns, slots, None, dims, vals)
    engram.table.build_postings()
    engram._terms_stale = True
