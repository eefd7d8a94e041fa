"""The persisted engram store: one file per workspace under the user cache dir.

Layout: ``MAGIC`` (8 bytes) | format version (u32, little-endian) | SHA-256 of the payload (32 bytes) | payload.
The payload is the length of a msgpack header (u64) | the header | the arrays' raw little-endian bytes, each at a
64-byte aligned offset. The header is the plain snapshot (``Engram.snapshot()``: feature keys, HVs and roles, the
chunk columns, the feature arena and the postings) with every array replaced by its dtype, shape and offset. So a
load is one read plus ``frombuffer`` views — nothing is decoded, re-hashed or re-encoded — and a save writes the
arrays' buffers straight to the file (the GIL is released while it writes and hashes, so a save does not stall the
server's event loop). No chunk text is stored, so the store never holds the workspace's text (or its secrets).

Writes go to a temporary file that is fsynced and renamed over the old store, so a crash (even ``kill -9``
mid-write) leaves the old or the new store, never half of one. A store that is truncated, fails its checksum, or has
another format version is reported in one line and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path

import msgpack
import numpy as np
import platformdirs

MAGIC = b"ENGRAMLS"
FORMAT_VERSION = 3
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


_ALIGN = 64
_LEN = struct.Struct("<Q")


def _split_arrays(value, blobs: list[np.ndarray], offset: list[int]):
    """The snapshot with each array replaced by its descriptor; the arrays go to ``blobs`` (little-endian)."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        start = offset[0]
        blobs.append(arr)
        offset[0] = start + (arr.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
        return {"__nd__": arr.dtype.str, "shape": list(arr.shape), "at": start}
    if isinstance(value, dict):
        return {k: _split_arrays(v, blobs, offset) for k, v in value.items()}
    return value


def _join_arrays(value, data: memoryview, base: int):
    if isinstance(value, dict):
        if "__nd__" in value:
            dtype = np.dtype(value["__nd__"])
            count = int(np.prod(value["shape"], dtype=np.int64))
            return np.frombuffer(data, dtype, count, base + value["at"]).reshape(value["shape"])
        return {k: _join_arrays(v, data, base) for k, v in value.items()}
    return value


def _pieces(snapshot: dict) -> list:
    """The payload as a list of buffers (header, then each array and its padding), without copying the arrays."""
    blobs: list[np.ndarray] = []
    header = msgpack.packb(_split_arrays(snapshot, blobs, [0]), use_bin_type=True)
    head = _LEN.pack(len(header)) + header
    pieces = [head, b"\0" * (-len(head) % _ALIGN)]
    for arr in blobs:
        pieces.append(memoryview(arr).cast("B") if arr.nbytes else b"")
        pieces.append(b"\0" * (-arr.nbytes % _ALIGN))
    return pieces


def encode_payload(snapshot: dict) -> bytes:
    return b"".join(bytes(p) for p in _pieces(snapshot))


def save(path: Path, snapshot: dict) -> None:
    pieces = _pieces(snapshot)
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, digest.digest())
    fd, tmp = tempfile.mkstemp(prefix=".engram-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            for piece in pieces:
                f.write(piece)
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
    """The decoded snapshot, or StoreError with one line saying what is wrong."""
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
    payload = memoryview(data)[_HEADER.size:]
    if hashlib.sha256(payload).digest() != digest:
        raise StoreError(f"engram store {path} is corrupt (checksum mismatch)")
    try:
        (size,) = _LEN.unpack_from(payload)
        meta = msgpack.unpackb(payload[_LEN.size:_LEN.size + size], raw=False)
        base = _LEN.size + size
        body = _join_arrays(meta, payload, base + (-base % _ALIGN))
        if not isinstance(body, dict) or not isinstance(body.get("docs"), dict):
            raise ValueError("bad layout")
    except Exception as e:  # a checksummed but malformed payload: written by a broken build
        raise StoreError(f"engram store {path} is malformed ({e})") from None
    return body


def load(path: Path, root: str) -> dict | None:
    """The snapshot stored for workspace ``root``; None when there is none; StoreError when it cannot be used."""
    if not path.exists():
        return None
    body = read_payload(path)
    if body.get("root") != root:
        raise StoreError(f"engram store {path} belongs to another workspace ({body.get('root')})")
    return body
