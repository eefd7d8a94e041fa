import io

import msgpack
import pytest

from engram_ls.inference.protocol import MAX_FRAME, ProtocolError, decode, encode, read_frame


def test_frames_round_trip():
    msg = {"type": "generate", "id": "a", "prefix": "def f(", "snippets": [{"path": "x.py"}]}
    assert read_frame(io.BytesIO(encode(msg))) == msg


def test_bad_payload_is_not_fatal_but_eof_is():
    with pytest.raises(ProtocolError) as e:
        decode(b"\xc1")
    assert not e.value.fatal
    with pytest.raises(ProtocolError) as e:
        decode(msgpack.packb([1, 2]))
    assert not e.value.fatal
    with pytest.raises(ProtocolError) as e:
        read_frame(io.BytesIO(b"\x00\x00"))
    assert e.value.fatal


def test_oversized_length_is_fatal():
    with pytest.raises(ProtocolError) as e:
        read_frame(io.BytesIO((MAX_FRAME + 1).to_bytes(4, "big")))
    assert e.value.fatal


def test_the_frame_limit_is_64_mib_exactly():
    """The documented limit (protocol.md): a length of 64 MiB is read, one byte more is fatal — checked without
    allocating 64 MiB: the stream then ends early, which is a different fatal error."""
    with pytest.raises(ProtocolError, match="exceeds"):
        read_frame(io.BytesIO((64 * 1024 * 1024 + 1).to_bytes(4, "big")))
    with pytest.raises(ProtocolError, match="closed mid-frame") as e:
        read_frame(io.BytesIO((64 * 1024 * 1024).to_bytes(4, "big") + b"abc"))
    assert e.value.fatal
    with pytest.raises(ProtocolError, match="exceeds"):
        encode({"type": "x", "blob": b"\0" * (64 * 1024 * 1024)})


def test_a_stream_closed_mid_frame_is_fatal():
    frame = encode({"type": "token", "id": "a", "text": "hello"})
    with pytest.raises(ProtocolError, match="closed mid-frame") as e:
        read_frame(io.BytesIO(frame[:-2]))
    assert e.value.fatal


async def test_the_async_reader_agrees_with_the_blocking_one():
    import asyncio

    from engram_ls.inference.protocol import read_frame_async

    def reader(data: bytes):
        r = asyncio.StreamReader()
        r.feed_data(data)
        r.feed_eof()
        return r

    msg = {"type": "done", "id": "a", "text": "x" * 70_000}
    assert await read_frame_async(reader(encode(msg))) == msg
    for data, match in (((64 * 1024 * 1024 + 1).to_bytes(4, "big"), "exceeds"), (encode(msg)[:-5], "closed"),
                        (b"\x00", "closed"), (b"", "closed")):
        with pytest.raises(ProtocolError, match=match) as e:
            await read_frame_async(reader(data))
        assert e.value.fatal
    with pytest.raises(ProtocolError) as e:  # a bad payload is not fatal, whichever reader reads it
        await read_frame_async(reader(len(b"\xc1").to_bytes(4, "big") + b"\xc1"))
    assert not e.value.fatal

    class Broken:
        async def readexactly(self, n):
            raise ConnectionResetError("pipe gone")
    with pytest.raises(ProtocolError, match="closed") as e:
        await read_frame_async(Broken())
    assert e.value.fatal
