"""Fault row 8 (CI part): 10,000 random edits through didChange leave the engram equal to a full rebuild."""

import hashlib
import random

from lsprotocol import types

from engram_ls.retrieval import Engram
from tests.server.conftest import change, command, indexed, open_doc, start, stop

PIECES = ["", "x", "\n", "def f():\n    return 1\n", "    y = a.b(c)\n", "😀", "class K:\n", "    # note\n",
          "\t", "'''", "(", ")"]


async def test_ten_thousand_random_edits_equal_a_rebuild(workspace, tmp_path):
    rng = random.Random(1234)
    client = await start(workspace, tmp_path / "cache", encodings=[types.PositionEncodingKind.Utf32])
    try:
        await indexed(client)
        path = workspace / "shop/cart.py"
        text = path.read_text()
        uri = open_doc(client, path, text=text)
        for version in range(2, 10_002):
            lines = text.split("\n")
            line = rng.randrange(len(lines))
            col = rng.randint(0, len(lines[line]))
            end_line = min(len(lines) - 1, line + rng.choice([0, 0, 0, 1, 2]))
            end_col = rng.randint(0, len(lines[end_line])) if end_line > line else rng.randint(col, len(lines[line]))
            new = rng.choice(PIECES)
            if len(text) > 6000:
                new = ""  # keep the document a sensible size
            change(client, uri, version, (line, col), (end_line, end_col), new)
            a = sum(len(l) + 1 for l in lines[:line]) + col
            b = sum(len(l) + 1 for l in lines[:end_line]) + end_col
            text = text[:a] + new + text[b:]
        state = await command(client, "engram.documentState", {"uri": uri})
    finally:
        await stop(client)
    fresh = Engram.open(workspace, cache_dir=tmp_path / "fresh")
    fresh.set_document("shop/cart.py", text)
    dims, vals = fresh.file_vector("shop/cart.py")
    assert state["text_sha"] == hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    assert state["chunks"] == [[c.start_line, c.end_line, c.digest, c.kind, c.symbol] for c in fresh.chunks("shop/cart.py")]
    assert state["vector_sha"] == hashlib.sha256(dims.tobytes() + vals.astype("int64").tobytes()).hexdigest()
