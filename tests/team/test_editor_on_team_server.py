"""An editor's engram-ls (over stdio, as VS Code drives it) configured for the team server: completions and hovers
come from the real llama-server, and a refused key reaches the editor as a clear error."""

import pytest
from lsprotocol import types

from tests.retrieval.conftest import make_workspace
from tests.server.conftest import command, indexed, open_doc, start, stop

from .conftest import KEY_ENV

pytestmark = pytest.mark.model


def team_options(url: str) -> dict:
    return {"backend": {"kind": "openai", "url": url, "apiKeyEnv": KEY_ENV, "remoteModel": "qwen"},
            "completion": {"debounceMs": 0, "maxTokens": 16}}


def inline(client, uri, line, character):
    return client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))


async def test_inline_completion_and_status_from_the_team_server(llama_server, team_key, tmp_path):
    root = make_workspace(tmp_path / "ws")
    client = await start(root, tmp_path / "cache", options=team_options(llama_server.url))
    try:
        await indexed(client)
        uri = open_doc(client, root / "shop/cart.py", text=(root / "shop/cart.py").read_text().replace(
            "        return apply_discount(subtotal)", "        return "))
        result = await inline(client, uri, 14, 15)
        assert "apply_discount(" in result.items[0].insert_text
        status = await command(client, "engram.status")
        assert status["models"]["coding"]["backend"] == "openai"
        assert any("shop/cart.py" in (s.get("prompt") or "") for s in llama_server.slots())
    finally:
        await stop(client)


async def test_a_refused_key_reaches_the_editor_as_a_clear_error(llama_server, monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_ENV, "not-the-team-key")
    root = make_workspace(tmp_path / "ws")
    client = await start(root, tmp_path / "cache", options=team_options(llama_server.url))
    try:
        await indexed(client)
        uri = open_doc(client, root / "shop/cart.py")
        with pytest.raises(Exception) as err:
            await inline(client, uri, 14, 8)
        assert "401" in str(err.value) and f"${KEY_ENV}" in str(err.value), err.value
    finally:
        await stop(client)
