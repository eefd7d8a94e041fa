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
