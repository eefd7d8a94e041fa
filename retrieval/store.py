"""The persisted engram store: one file per workspace under the user cache dir.

Layout: ``MAGIC`` (8 bytes) | format version (u32, little-endian) | SHA-256 of the payload (32 bytes) | payload.
The payload is msgpack of a plain snapshot (``Engram.snapshot()``): the live features' names and hypervectors, and
the chunk columns and feature arena as raw little-endian arrays — so loading is ``frombuffer`` plus a postings
transpose, with nothing re-hashed or re-encoded. No chunk text is stored, so the store never holds the workspace's
text (or its secrets).

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


def _pack_value(value):
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        return {"__nd__": arr.dtype.newbyteorder("<").str, "shape": list(arr.shape),
                "data": arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()}
    if isinstance(value, dict):
        return {k: _pack_value(v) for k, v in value.items()}
    return value


def _unpack_value(value):
    if isinstance(value, dict):
        if "__nd__" in value:
            return np.frombuffer(value["data"], np.dtype(value["__nd__"])).reshape(value["shape"])
        return {k: _unpack_value(v) for k, v in value.items()}
    return value


def encode_payload(snapshot: dict) -> bytes:
    return msgpack.packb(_pack_value(snapshot), use_bin_type=True)


def save(path: Path, snapshot: dict) -> None:
    payload = encode_payload(snapshot)
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
        body = _unpack_value(msgpack.unpackb(payload, raw=False))
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
