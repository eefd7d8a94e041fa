"""The worker protocol: length-prefixed msgpack frames over a pipe.

A frame is a 4-byte big-endian payload length followed by a msgpack map with a ``type`` key. Version 1 types:

parent -> worker: ``generate`` (id, mode fim|chat|prompt, fields, max_tokens, temperature, stop, stream, deadline,
sampling: a map of ``SamplingSettings`` fields — repeat_penalty, presence_penalty, frequency_penalty, dry_multiplier,
dry_base, dry_allowed_length, dry_penalty_last_n; missing means llama.cpp's neutral values; a fim request may carry a
``budget``: the tokens its prompt and generation may use, below the model's n_ctx, ``suffix_budget``: the most
tokens of the text after the cursor the prompt holds (0: no cap), and ``inline_stop``: end where an inline
suggestion is cut anyway, ``prompts.suggestion_ended``),
``cancel`` (id), ``tokenize`` (id, text), ``ping`` (seq), ``shutdown``.
worker -> parent: ``hello`` (protocol, model, n_ctx, chat_template, fim, backend, pid), ``token`` (id, text),
``done`` (id, text, finish, usage, timings, cited), ``tokens`` (id, count), ``pong`` (seq, busy), ``error``
(id or None, code, message).

A stream is ``token`` frames ending in exactly one ``done`` or ``error`` for that id.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import msgpack

PROTOCOL_VERSION = 1
MAX_FRAME = 64 * 1024 * 1024
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame could not be read or decoded; ``fatal`` when the stream itself is out of sync or closed."""

    def __init__(self, message: str, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


# Error codes carried by ``error`` frames, mapped from the exceptions that cause them.
ERROR_CODES = {
    "bad_frame": "the frame could not be decoded",
    "bad_request": "the request is missing fields or has wrong types",
    "unknown_type": "the frame type is not part of this protocol version",
    "busy": "the worker is already generating",
    "deadline": "the request's deadline passed",
    "model_error": "the model failed while generating",
    "backend_unavailable": "the remote inference server could not be reached",
    "internal": "unexpected worker error",
}


def encode(message: dict) -> bytes:
    payload = msgpack.packb(message, use_bin_type=True)
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return _LEN.pack(len(payload)) + payload


def decode(payload: bytes) -> dict:
    try:
        message = msgpack.unpackb(payload, raw=False)
    except Exception as e:
        raise ProtocolError(f"undecodable frame: {e}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a frame must be a map with a string 'type'")
    return message


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    """n bytes, looping: an unbuffered pipe returns at most what it holds (64 KiB), so big frames arrive in parts."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_frame(stream: BinaryIO) -> dict:
    """Reads one frame (blocking). EOF or a bad length is fatal; a bad payload is not."""
    header = _read_exactly(stream, _LEN.size)
    if len(header) < _LEN.size:
        raise ProtocolError("stream closed", fatal=True)
    (size,) = _LEN.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame length {size} exceeds {MAX_FRAME}", fatal=True)
    payload = _read_exactly(stream, size)
    if len(payload) < size:
        raise ProtocolError("stream closed mid-frame", fatal=True)
    return decode(payload)


async def read_frame_async(reader) -> dict:
    """Reads one frame from an asyncio StreamReader."""
    import asyncio

    try:
        header = await reader.readexactly(_LEN.size)
        (size,) = _LEN.unpack(header)
        if size > MAX_FRAME:
            raise ProtocolError(f"frame length {size} exceeds {MAX_FRAME}", fatal=True)
        payload = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        raise ProtocolError("stream closed", fatal=True) from None
    return decode(payload)


def error_frame(request_id, code: str, message: str) -> dict:
    return {"type": "error", "id": request_id, "code": code, "message": message}
