"""Fault row 2: a damaged, foreign-version, unwritable or full-disk store — reported once, rebuilt or served
from memory, never a crash."""

import os
import sys

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig

from engram_ls.retrieval import Engram
from engram_ls.retrieval import store as store_mod
from tests.server.conftest import capabilities, command, indexed, search, start, stop

STUB = {"backend": {"kind": "stub"}}


def build_store(workspace, cache):
    e = Engram.open(workspace, cache_dir=cache)
    e.index_workspace()
    e.save()
    return e.store_path


def flip(data: bytearray) -> bytearray:
    data[len(data) // 2] ^= 0x01
    return data


def future(data: bytearray) -> bytearray:
    data[8:12] = (store_mod.FORMAT_VERSION + 7).to_bytes(4, "little")
    return data


@pytest.mark.parametrize("damage,needle", [(lambda d: d[: len(d) // 3], "truncated|checksum"),
                                           (flip, "checksum"), (future, "format version")])
async def test_damaged_store_is_reported_once_and_rebuilt(workspace, tmp_path, damage, needle):
    import re

    path = build_store(workspace, tmp_path / "cache")
    path.write_bytes(bytes(damage(bytearray(path.read_bytes()))))
    client = await start(workspace, tmp_path / "cache", options=STUB)
    try:
        await indexed(client)
        warnings = [m.message for m in client.messages if "rebuilding" in m.message]
        assert len(warnings) == 1 and re.search(needle, warnings[0])
        assert (await search(client, "download a web page", 1))[0]["path"] == "net/http_client.py"
    finally:
        await stop(client)
    again = Engram.open(workspace, cache_dir=tmp_path / "cache")
    assert again.load_warning is None and len(again.documents()) == 5  # the rebuilt store was saved


async def test_unwritable_store_is_served_from_memory(workspace, tmp_path):
    path = store_mod.store_path(workspace, tmp_path / "cache")
    path.mkdir(parents=True)  # a directory where the store file should be: every save fails
    (path / "keep").write_text("x")
    client = await start(workspace, tmp_path / "cache", options=STUB)
    try:
        await indexed(client)
        warnings = [m.message for m in client.messages if "cannot save the index" in m.message]
        assert len(warnings) == 1
        assert (await search(client, "download a web page", 1))[0]["path"] == "net/http_client.py"
    finally:
        await stop(client)


async def test_full_disk_is_survived(workspace, tmp_path):
    """RLIMIT_FSIZE makes every write past 2 KiB fail with EFBIG, as a full disk fails with ENOSPC."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)); "
            "from engram_ls.server.cli import main; sys.exit(main(['serve']))")
    config = ClientServerConfig(server_command=[sys.executable, "-c", code],
                                server_env=dict(os.environ, ENGRAM_LS_CACHE=str(tmp_path / "cache")))
    client = await config.start()
    try:
        await client.initialize_session(types.InitializeParams(
            capabilities=capabilities("vscode"), initialization_options=STUB,
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]))
        await indexed(client)
        assert any("cannot save the index" in m.message for m in client.messages)
        assert (await search(client, "download a web page", 1))[0]["path"] == "net/http_client.py"
        status = await command(client, "engram.status")
        assert next(iter(status["index"].values()))["files"] == 5
        leftovers = [p for p in (tmp_path / "cache").rglob(".engram-*")]
        assert leftovers == []  # the half-written temporary file was removed
    finally:
        await stop(client)
