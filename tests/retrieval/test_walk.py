import os

from engram_ls.retrieval import Engram, IndexSettings
from engram_ls.retrieval.walk import walk_files


def test_gitignore_engramignore_and_settings_are_honoured(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("a = 1\n")
    (tmp_path / "src/gen.py").write_text("g = 1\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/x.log").write_text("log\n")
    (tmp_path / "notes.txt").write_text("n\n")
    (tmp_path / "src/.gitignore").write_text("gen.py\n")
    (tmp_path / ".gitignore").write_text("logs/\n")
    (tmp_path / ".engramignore").write_text("*.txt\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules/m.js").write_text("m\n")
    files = list(walk_files(tmp_path, IndexSettings(ignore=["*.md"])))
    assert "src/a.py" in files
    assert not {"src/gen.py", "logs/x.log", "notes.txt", "node_modules/m.js"} & set(files)


def test_binary_oversize_invalid_utf8_and_secrets(tmp_path, cache):
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "big.txt").write_text("x" * 5000)
    (tmp_path / "latin.py").write_bytes(b"name = 'caf\xe9'\ndef brew_coffee():\n    pass\n")
    (tmp_path / ".env").write_text("AWS_SECRET=abc\n")
    (tmp_path / "id_rsa").write_text("key\n")
    e = Engram.open(tmp_path, IndexSettings(max_file_bytes=4000), cache_dir=cache)
    e.index_workspace()
    assert e.documents() == ["latin.py"]
    assert e.search("brew coffee", 1)[0].path == "latin.py"
    with_secrets = Engram.open(tmp_path, IndexSettings(max_file_bytes=4000, include_secrets=True),
                               cache_dir=tmp_path / "c2")
    with_secrets.index_workspace()
    assert ".env" in with_secrets.documents()


def test_symlink_loops_and_escapes_are_not_followed(tmp_path, cache):
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg/mod.py").write_text("def inside():\n    pass\n")
    os.symlink(ws, ws / "pkg/loop")
    outside = tmp_path / "outside.py"
    outside.write_text("def outside():\n    pass\n")
    os.symlink(outside, ws / "escape.py")
    e = Engram.open(ws, cache_dir=cache)
    summary = e.index_workspace()
    assert e.documents() == ["pkg/mod.py"] and summary.files == 1


def test_inline_secrets_never_reach_results(tmp_path, cache):
    key = "AKIA" + "QWERTYUIOPASDFGH"
    (tmp_path / "settings.py").write_text(f"AWS_ACCESS_KEY_ID = '{key}'\ndef connect_to_bucket():\n    pass\n")
    e = Engram.open(tmp_path, cache_dir=cache)
    e.index_workspace()
    e.save()
    hits = e.search("connect to bucket aws access key", 3)
    assert hits and all(key not in h.text for h in hits)
    assert key.encode() not in e.store_path.read_bytes()
    assert e.search(key, 3) == [] or all(key not in h.text for h in e.search(key, 3))


def test_cancelled_indexing_stops_early(workspace, cache):
    e = Engram.open(workspace, cache_dir=cache)
    calls = []
    summary = e.index_workspace(progress=lambda d, t, p: calls.append(d), cancelled=lambda: len(calls) >= 2)
    assert summary.cancelled and summary.files < 5


def test_named_pipes_and_sockets_are_skipped(tmp_path):
    """Reading a FIFO blocks until a writer comes: the walk and the reader must pass over anything not regular."""
    import os
    import socket

    from engram_ls.retrieval.settings import IndexSettings
    from engram_ls.retrieval.walk import read_text_file, walk_files

    (tmp_path / "real.py").write_text("x = 1\n")
    os.mkfifo(tmp_path / "pipe.py")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.py"))
    try:
        assert list(walk_files(tmp_path, IndexSettings())) == ["real.py"]
        assert read_text_file(tmp_path / "pipe.py", 1000) is None
    finally:
        sock.close()
