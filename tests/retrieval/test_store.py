import os

import pytest

from engram_ls.retrieval import Engram
from engram_ls.retrieval import store


def build(workspace, cache):
    e = Engram.open(workspace, cache_dir=cache)
    e.index_workspace()
    e.save()
    return e


def test_round_trip_gives_identical_results(workspace, cache):
    e = build(workspace, cache)
    again = Engram.open(workspace, cache_dir=cache)
    assert again.load_warning is None
    assert again.documents() == e.documents()
    # every open is followed by an index, which re-encodes nothing here but re-learns the semantic layer (not stored)
    assert again.index_workspace().encoded_files == 0
    for q in ["download a web page", "shopping cart total", "slugify"]:
        assert [(h.path, h.start_line, h.score) for h in again.search(q, 5)] == \
            [(h.path, h.start_line, h.score) for h in e.search(q, 5)]


def test_restart_reencodes_only_changed_files(workspace, cache):
    build(workspace, cache)
    (workspace / "shop/pricing.py").write_text("def apply_discount(amount):\n    return amount * 0.5\n")
    (workspace / "README.md").unlink()
    again = Engram.open(workspace, cache_dir=cache)
    summary = again.index_workspace()
    assert summary.encoded_files == 1 and summary.removed_files == 1
    assert "README.md" not in again.documents()


def test_store_holds_no_source_text(workspace, cache):
    e = build(workspace, cache)
    data = e.store_path.read_bytes()
    assert b"Takes ten percent off" not in data and b"socket.create_connection" not in data


def _corrupt_and_reopen(workspace, cache, mutate):
    e = build(workspace, cache)
    data = bytearray(e.store_path.read_bytes())
    e.store_path.write_bytes(bytes(mutate(data)))
    again = Engram.open(workspace, cache_dir=cache)
    assert again.documents() == []
    summary = again.index_workspace()
    assert summary.files == len(e.documents())
    assert again.search("download a web page", 1)[0].path == "net/http_client.py"
    return again.load_warning


def test_truncated_store_is_reported_and_rebuilt(workspace, cache):
    warning = _corrupt_and_reopen(workspace, cache, lambda d: d[:30])
    assert "truncated" in warning or "corrupt" in warning
    assert "\n" not in warning


def test_bit_flip_is_detected(workspace, cache):
    def flip(d):
        d[len(d) // 2] ^= 0x10
        return d
    assert "checksum" in _corrupt_and_reopen(workspace, cache, flip)


def test_future_format_version_is_detected(workspace, cache):
    def future(d):
        d[8:12] = (store.FORMAT_VERSION + 1).to_bytes(4, "little")
        return d
    assert "format version" in _corrupt_and_reopen(workspace, cache, future)


def test_foreign_file_is_detected(workspace, cache):
    assert "not an engram-ls store" in _corrupt_and_reopen(workspace, cache, lambda d: b"x" * 200)


def test_save_is_atomic_on_failure(workspace, cache, monkeypatch):
    e = build(workspace, cache)
    before = e.store_path.read_bytes()

    def boom(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", boom)
    e.set_document("shop/pricing.py", "X = 1\n")
    with pytest.raises(OSError, match="No space left"):
        e.save()  # the failure reaches the caller: nobody is told "saved" when it was not
    assert e.store_path.read_bytes() == before
    assert [p.name for p in e.store_path.parent.iterdir()] == [e.store_path.name]


def test_cache_location_comes_from_the_argument_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAM_LS_CACHE", str(tmp_path / "from-env"))
    assert store.cache_root() == tmp_path / "from-env"
    assert store.cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("ENGRAM_LS_CACHE")
    assert store.cache_root() != tmp_path / "from-env" and "engram-ls" in str(store.cache_root())


def test_unreadable_store_is_one_line_saying_so(workspace, cache):
    e = build(workspace, cache)
    e.store_path.unlink()
    e.store_path.mkdir()  # reading it fails with an OSError (IsADirectoryError), even for root
    with pytest.raises(store.StoreError, match=r"is unreadable \(Is a directory\)"):
        store.read_payload(e.store_path)
    again = Engram.open(workspace, cache_dir=cache)
    assert "unreadable" in again.load_warning and again.documents() == []
