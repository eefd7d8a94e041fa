"""Document sync: incremental edits in every position encoding reach the engrams exactly."""

import pytest
from lsprotocol import types

from .conftest import change, command, indexed, open_doc, search, start, stop

ENCODINGS = [types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf32]


def units(text: str, encoding) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf16:
        return len(text.encode("utf-16-le")) // 2
    return len(text)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_edits_after_emoji_and_tabs_land_in_the_right_place(workspace, tmp_path, encoding):
    client = await start(workspace, tmp_path / "cache", encodings=[encoding])
    try:
        assert client.init_result.capabilities.position_encoding == encoding
        await indexed(client)
        path = workspace / "emoji.py"
        text = "def greet():\n\treturn '😀 hi'  # 𝄞\n"
        path.write_text(text)
        uri = open_doc(client, path)
        prefix = "\treturn '😀 hi'  # 𝄞"
        col = units(prefix, encoding)
        change(client, uri, 2, (1, col), (1, col), "  zebra_marker_token")
        hits = await search(client, "zebra marker token", 1)
        assert hits[0]["path"] == "emoji.py"
        assert hits[0]["text"].splitlines()[1] == "\treturn '😀 hi'  # 𝄞  zebra_marker_token"
        # replace the emoji itself (one code point, 2 UTF-16 units, 4 UTF-8 bytes)
        begin = units("\treturn '", encoding)
        change(client, uri, 3, (1, begin), (1, begin + units("😀", encoding)), "🙂")
        hits = await search(client, "zebra marker token", 1)
        assert "'🙂 hi'" in hits[0]["text"]
    finally:
        await stop(client)


async def test_crlf_documents_keep_their_line_numbers(client, workspace):
    path = workspace / "crlf.py"
    path.write_bytes(b"import os\r\n\r\n\r\ndef first():\r\n    return 1\r\n")
    uri = open_doc(client, path, text=path.read_bytes().decode())
    change(client, uri, 2, (4, 12), (4, 12), " + walrus_marker_value")
    hits = await search(client, "walrus marker value", 1)
    assert hits[0]["path"] == "crlf.py" and hits[0]["start_line"] == 4
    assert "walrus_marker_value" in hits[0]["text"]


async def test_sequence_of_edits_matches_the_editor_text(client, workspace):
    uri = open_doc(client, workspace / "shop/pricing.py")
    change(client, uri, 2, (0, 0), (0, 0), "# header\n")
    change(client, uri, 3, (2, 0), (2, 0), "LIMIT_QUOKKA = 100\n")
    change(client, uri, 4, (1, 0), (1, 13), "DISCOUNT_RATE")  # same text: a no-op replacement
    hits = await search(client, "LIMIT_QUOKKA", 1)
    assert hits[0]["path"] == "shop/pricing.py" and "LIMIT_QUOKKA = 100" in hits[0]["text"]
    lines = (workspace / "shop/pricing.py").read_text().splitlines()
    expected = ["# header", lines[0], "LIMIT_QUOKKA = 100"]
    assert hits[0]["text"].splitlines()[:3] == expected


async def test_close_returns_to_the_disk_version(client, workspace):
    uri = open_doc(client, workspace / "shop/pricing.py")
    change(client, uri, 2, (0, 0), (0, 0), "UNSAVED_PANGOLIN = 1\n")
    assert (await search(client, "UNSAVED_PANGOLIN", 1))[0]["path"] == "shop/pricing.py"
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))
    results = await search(client, "UNSAVED_PANGOLIN", 3)
    assert all("UNSAVED_PANGOLIN" not in r["text"] for r in results)
    # the file is still indexed, with exactly its disk text at the cited lines
    disk = (workspace / "shop/pricing.py").read_text().splitlines()
    hit = next(r for r in await search(client, "apply discount rate amount", 5) if r["path"] == "shop/pricing.py")
    assert hit["text"] == "\n".join(disk[hit["start_line"] - 1:hit["end_line"]])


async def files_indexed(client) -> int:
    return sum(r["files"] for r in (await command(client, "engram.status"))["index"].values())


async def test_watched_file_changes_update_the_index(client, workspace):
    files = await files_indexed(client)
    new = workspace / "net/watched.py"
    new.write_text("def watched_capybara():\n    pass\n")
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=new.as_uri(), type=types.FileChangeType.Created)]))
    assert (await search(client, "watched capybara", 1))[0]["path"] == "net/watched.py"
    assert await files_indexed(client) == files + 1
    new.unlink()
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=new.as_uri(), type=types.FileChangeType.Deleted)]))
    assert all(r["path"] != "net/watched.py" for r in await search(client, "watched capybara", 3))
    assert await files_indexed(client) == files  # removed from the index, not just ranked lower


async def test_unopened_and_out_of_order_changes_do_not_break_the_server(client, workspace):
    ghost = (workspace / "ghost.py").as_uri()
    change(client, ghost, 5, (0, 0), (0, 0), "x = 1\n")
    uri = open_doc(client, workspace / "shop/cart.py", version=10)
    change(client, uri, 3, (0, 0), (0, 0), "# older version\n")
    assert (await search(client, "download a web page", 1))[0]["path"] == "net/http_client.py"


async def test_secret_files_opened_in_the_editor_stay_out_of_the_index(client, workspace):
    env = workspace / ".env"
    env.write_text("API_TOKEN=sk-live-abcdefghijklmnopqrstuvwx\n")
    uri = open_doc(client, env, language="dotenv")
    change(client, uri, 2, (0, 0), (0, 0), "ARMADILLO_SECRET=1\n")
    files = await files_indexed(client)
    # the control: the same text in an ordinary file is found at once
    plain = workspace / "settings.py"
    plain.write_text("OTHER = 2\n")
    plain_uri = open_doc(client, plain)
    change(client, plain_uri, 2, (0, 0), (0, 0), "ARMADILLO_SECRET=1\n")
    results = await search(client, "ARMADILLO_SECRET API_TOKEN", 5)
    assert results and results[0]["path"] == "settings.py"
    assert all(r["path"] != ".env" for r in results)
    assert all("sk-live" not in r["text"] for r in await search(client, "API_TOKEN sk live", 10))
    assert await files_indexed(client) == files + 1  # settings.py joined; .env never did
