"""End-to-end helpers: a real engram-ls over stdio driven by pytest-lsp's client."""

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

from tests.retrieval.conftest import make_workspace

SERVER = [sys.executable, "-m", "engram_ls.server.cli", "serve", "--log-level", "info"]
STUB = {"backend": {"kind": "stub"}, "completion": {"debounceMs": 0}}


def capabilities(kind: str, encodings=None) -> types.ClientCapabilities:
    """VS Code (with the proposed inline completion its client registers) or Neovim 0.11 capabilities."""
    caps = client_capabilities("visual-studio-code" if kind == "vscode" else "neovim@v0.11.0")
    if kind == "vscode":
        caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    if encodings is not None:
        caps.general = caps.general or types.GeneralClientCapabilities()
        caps.general.position_encodings = encodings
    return caps


async def start(root: Path | list[Path], cache: Path, options: dict | None = STUB, kind: str = "vscode",
                encodings=None, server: list[str] | None = None, env: dict | None = None):
    roots = root if isinstance(root, list) else [root]
    config = ClientServerConfig(server_command=server or SERVER,
                                server_env=dict(os.environ, ENGRAM_LS_CACHE=str(cache), **(env or {})))
    client = await config.start()
    client.applied_edits = []

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams):
        client.applied_edits.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    client.registrations = []

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(params: types.RegistrationParams):
        client.registrations.extend(params.registrations)

    client.init_result = await client.initialize_session(types.InitializeParams(
        capabilities=capabilities(kind, encodings),
        workspace_folders=[types.WorkspaceFolder(uri=r.as_uri(), name=r.name) for r in roots],
        initialization_options=options))
    return client


async def stop(client) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 60)
    finally:
        await client.stop()


async def command(client, name: str, arg=None):
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=name, arguments=[] if arg is None else [arg]))


async def until(predicate, timeout: float = 60.0, what: str = "condition"):
    """Polls an async predicate until it holds (a wait on a condition, with a deadline)."""
    end = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def indexed(client, timeout: float = 60.0) -> dict:
    async def ready():
        status = await command(client, "engram.status")
        roots = status["index"].values()
        return status if roots and all(not r["indexing"] and r["files"] > 0 for r in roots) else None
    return await until(ready, timeout=timeout, what="indexing")


def open_doc(client, path: Path, text: str | None = None, version: int = 1, language: str = "python") -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=uri, language_id=language, version=version, text=path.read_text() if text is None else text)))
    return uri


def change(client, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(*start), types.Position(*end)), text=text)]))


async def search(client, query: str, k: int = 5) -> list[dict]:
    return (await command(client, "engram.search", {"query": query, "k": k}))["results"]


@pytest_asyncio.fixture
async def workspace(tmp_path):
    return make_workspace(tmp_path / "ws")


@pytest_asyncio.fixture
async def client(workspace, tmp_path):
    c = await start(workspace, tmp_path / "cache")
    await indexed(c)
    yield c
    await stop(c)
