"""No workspace folder (a file opened from a loose folder of scripts): the file's folder is indexed, bounded, with
progress, and the user is told once."""

from lsprotocol import types

from tests.retrieval.conftest import make_workspace

from .conftest import STUB, command, open_doc, search, start, stop, until


async def test_no_root_indexes_the_open_files_folder_and_says_so_once(tmp_path):
    folder = make_workspace(tmp_path / "scripts")
    client = await start([], tmp_path / "cache", options=STUB, kind="neovim")
    try:
        assert (await command(client, "engram.status"))["roots"] == []
        uri = open_doc(client, folder / "shop/cart.py")

        async def indexed():
            index = (await command(client, "engram.status"))["index"]
            return index and all(not r["indexing"] and r["files"] > 0 for r in index.values()) and index
        index = await until(indexed, what="the loose folder to be indexed")
        root, info = next(iter(index.items()))
        assert root == str((folder / "shop").resolve()) and info["loose"] is True
        # both files that use apply_discount, cited relative to the loose root (not "shop/…")
        assert {h["path"] for h in await search(client, "apply a discount", 2)} == {"cart.py", "pricing.py"}

        told = [m.message for m in client.messages if "no workspace folder" in m.message]
        assert len(told) == 1 and str((folder / "shop").resolve()) in told[0], told
        assert any(isinstance(v, types.WorkDoneProgressBegin) and "no workspace folder" in v.title
                   for reports in client.progress_reports.values() for v in reports)

        hover = await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(14, 16)))
        assert "apply_discount" in hover.contents.value and "[cart.py:" in hover.contents.value

        open_doc(client, folder / "shop/pricing.py")  # same folder: no second root, no second message
        await until(indexed, what="indexing")
        assert (await command(client, "engram.status"))["roots"] == [str((folder / "shop").resolve())]
        assert len([m for m in client.messages if "no workspace folder" in m.message]) == 1
    finally:
        await stop(client)


async def test_a_loose_folder_is_bounded(tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(2100):
        (folder / f"s{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    client = await start([], tmp_path / "cache", options=STUB)
    try:
        open_doc(client, folder / "s0.py")

        async def indexed():
            index = (await command(client, "engram.status"))["index"]
            return index and all(not r["indexing"] for r in index.values()) and index
        info = next(iter((await until(indexed, timeout=300, what="indexing")).values()))
        assert info["files"] == 2000
    finally:
        await stop(client)


async def test_with_a_workspace_folder_an_outside_file_adds_no_root(workspace, tmp_path):
    outside = make_workspace(tmp_path / "elsewhere")
    client = await start(workspace, tmp_path / "cache")
    try:
        open_doc(client, outside / "shop/cart.py")
        assert (await command(client, "engram.status"))["roots"] == [str(workspace.resolve())]
    finally:
        await stop(client)
