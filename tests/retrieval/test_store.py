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


def test_a_store_whose_symbols_do_not_match_its_chunks_is_rebuilt(workspace, cache):
    e = build(workspace, cache)
    snapshot = store.load(e.store_path, str(e.root))
    snapshot["symbols"] = snapshot["symbols"][:-1]
    store.save(e.store_path, snapshot)  # a valid file, checksum and all, that says the wrong thing
    again = Engram.open(workspace, cache_dir=cache)
    assert "symbols" in again.load_warning and "rebuilding" in again.load_warning
    again.index_workspace()
    assert again.search("download a web page", 3)


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


def test_a_save_writes_only_when_what_the_store_keeps_changed(workspace, cache):
    e = build(workspace, cache)

    def saved(engram) -> bool:
        """Saves; whether the file was replaced (a write goes to a new file renamed over the old: a new inode)."""
        before = os.stat(engram.store_path).st_ino
        wrote = engram.save()
        assert wrote == (os.stat(engram.store_path).st_ino != before)
        return wrote

    assert saved(e) is False
    cart = (workspace / "shop/cart.py").read_text()
    e.set_document("shop/cart.py", cart + "# typed in the editor\n")
    assert saved(e) is True                         # the file is open now: the store drops it (its disk text)
    e.set_document("shop/cart.py", cart + "# typed some more\n")
    assert saved(e) is False                        # an open buffer is never stored: nothing to write
    assert saved(Engram.open(workspace, cache_dir=cache)) is False      # nor after reopening an unchanged store
    (workspace / "shop/pricing.py").write_text("def apply_discount(amount):\n    return amount * 0.5\n")
    e.refresh_file("shop/pricing.py")
    assert saved(e) is True
    assert Engram.open(workspace, cache_dir=cache).docs["shop/pricing.py"].size == len("def apply_discount(amount):\n    return amount * 0.5\n")


def test_a_save_killed_mid_write_leaves_a_store_that_opens(tmp_path, cache):
    """kill -9 in the middle of writing a store (after two complete saves): what is on disk is the last complete
    save. The child process stops itself after the first piece of its third write (its file writes are wrapped so
    that they wait for a line on stdin there), and is killed at that point."""
    import signal
    import subprocess
    import sys
    import textwrap

    from tests.retrieval.conftest import make_workspace

    ws = make_workspace(tmp_path / "big", {f"pkg/m{i}.py": "".join(
        f"def f{i}_{j}(value, other):\n    return value * {j} + other - {i}\n\n" for j in range(20))
        for i in range(30)})
    script = textwrap.dedent(f"""
        import builtins, os, sys
        from pathlib import Path
        from engram_ls.retrieval import Engram

        saves = 0

        class Paused:
            def __init__(self, f):
                self.f = f
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return self.f.__exit__(*exc)
            def write(self, data):
                n = self.f.write(data)
                if saves == 3:
                    self.f.flush()
                    print("mid-write", flush=True)
                    sys.stdin.readline()          # killed here
                return n
            def __getattr__(self, name):
                return getattr(self.f, name)

        real_fdopen, real_open = os.fdopen, builtins.open
        os.fdopen = lambda fd, mode="r", *a, **k: Paused(real_fdopen(fd, mode, *a, **k)) if "w" in mode \\
            else real_fdopen(fd, mode, *a, **k)
        builtins.open = lambda file, mode="r", *a, **k: Paused(real_open(file, mode, *a, **k)) \\
            if "w" in mode and "stores" in str(file) else real_open(file, mode, *a, **k)
        e = Engram.open(Path({str(ws)!r}), cache_dir=Path({str(cache)!r}))
        e.index_workspace()
        for n in range(3):
            Path({str(ws)!r}, "pkg/m0.py").write_text(f"def changed_{{n}}():\\n    return {{n}}\\n")
            e.refresh_file("pkg/m0.py")
            saves += 1
            e.save()
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "mid-write"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    e = Engram.open(ws, cache_dir=cache)
    assert e.load_warning is None and len(e.documents()) == 30
    from engram_ls.retrieval.documents import sha_of
    assert e.docs["pkg/m0.py"].sha == sha_of("def changed_1():\n    return 1\n")   # the second save, complete
