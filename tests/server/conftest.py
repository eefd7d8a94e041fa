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


class ScriptedCoder:
    """An OpenAI-compatible model on 127.0.0.1 that writes code that parses (the stub's words do not, and every
    proposed edit is parsed before it is offered): a rewrite returns the code it was given with a comment line on
    top, a test request returns a small pytest file, anything else a one-line plan. ``prompts`` records what it
    was asked."""

    def __init__(self):
        import re
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import json as _json

        coder = self
        self.prompts: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = _json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body.get("prompt") or "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
                coder.prompts.append(prompt)
                block = re.search(r"```([\w+-]*)\n(.*?)\n```", prompt.split("Rewrite the following code")[-1],
                                  re.DOTALL)
                if "Rewrite the following code" in prompt and block:
                    marker = "//" if block.group(1) in ("javascript", "typescript", "go", "rust", "java", "c",
                                                         "cpp") else "#"
                    text = f"```{block.group(1)}\n{marker} reviewed by the scripted model\n{block.group(2)}\n```"
                elif "Write unit tests" in prompt:
                    text = "```python\ndef test_scripted():\n    assert 1 + 1 == 2\n```"
                elif "messages" in body:
                    text = "Change the function shown; keep its behaviour."
                else:
                    text = "pass"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                event = {"choices": [{"delta": {"content": text}}]} if "messages" in body else \
                    {"choices": [{"text": text}]}
                self.wfile.write(f"data: {_json.dumps(event)}\n\ndata: [DONE]\n\n".encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest_asyncio.fixture
async def coder_client(workspace, tmp_path):
    """A server whose model is the ScriptedCoder (for tests of edits, which must parse)."""
    coder = ScriptedCoder()
    c = await start(workspace, tmp_path / "cache", options={"backend": {"kind": "openai", "url": coder.url},
                                                            "completion": {"debounceMs": 0}})
    c.coder = coder
    await indexed(c)
    yield c
    await stop(c)
    coder.httpd.shutdown()
