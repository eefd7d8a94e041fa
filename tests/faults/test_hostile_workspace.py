"""Fault row 5: a hostile workspace — a 50 MB single-line file, binary files, a symlink loop, 100k tiny files,
invalid UTF-8 — indexes to completion while the server keeps answering; its peak RSS is reported and bounded."""

import os

from tests.server.conftest import command, indexed, search, start, stop


def build(root):
    root.mkdir()
    (root / "huge.min.js").write_bytes(b"var a=1;" * (50 * 1024 * 1024 // 8))  # one 50 MB line
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64)
    (root / "blob.bin").write_bytes(os.urandom(4096))
    (root / "latin1.py").write_bytes(b"# caf\xe9 cr\xe8me\ndef brew_espresso_shot():\n    return '\xff\xfe'\n")
    (root / "loop").mkdir()
    os.symlink(root, root / "loop" / "again")
    os.symlink(root / "missing-target", root / "dangling.py")
    for d in range(100):
        folder = root / "many" / f"d{d:03d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"f{i}.txt").write_text(f"item_{d}_{i} = {i}\n")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def test_hostile_workspace_indexes_and_the_server_keeps_answering(tmp_path, capsys):
    root = tmp_path / "hostile"
    build(root)
    client = await start(root, tmp_path / "cache", options={"backend": {"kind": "stub"}})
    try:
        status = await indexed(client, timeout=900)
        info = next(iter(status["index"].values()))
        assert info["files"] == 100_001  # the tiny files and latin1.py; not the huge, binary or looping ones
        hits = await search(client, "brew espresso shot", 1)
        assert hits[0]["path"] == "latin1.py" and "\ufffd" in hits[0]["text"]
        assert (await search(client, "item_42_7", 1))[0]["path"] == "many/d042/f7.txt"
        rss = peak_rss_mb(client._server.pid)
        with capsys.disabled():
            print(f"\n[faults] hostile workspace: {info['files']} files, {info['chunks']} chunks, "
                  f"server peak RSS {rss:.0f} MB")
        # A memory bound, not a timing: the v2 engine peaks at about 530 MB here (the target is 400 MB); the one
        # before it took 1,141 MB. 800 MB fails if per-file Python objects come back.
        assert rss < 800, f"server peak RSS {rss:.0f} MB indexing 100,001 files (bound 800 MB)"
    finally:
        await stop(client)
