"""The language server with the real shipped Qwen2.5-Coder-0.5B model in its workers."""

import pytest
from lsprotocol import types

from .conftest import command, indexed, open_doc, start, stop

pytestmark = pytest.mark.model

REAL = {"completion": {"debounceMs": 0, "maxTokens": 24}, "hover": {"modelTimeoutMs": 120000, "maxTokens": 40}}


async def test_real_model_completion_hover_and_explain(workspace, tmp_path):
    client = await start(workspace, tmp_path / "cache", options=REAL)
    try:
        await indexed(client)
        path = workspace / "shop/checkout.py"
        text = "from shop.pricing import apply_discount\n\n\ndef checkout(subtotal):\n    return \n"
        path.write_text(text)
        uri = open_doc(client, path)
        result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(4, 11),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        assert result is not None and "apply_discount(" in result.items[0].insert_text

        hover = await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(0, 28)))
        value = hover.contents.value
        assert value.startswith("**apply_discount** — ") and "stub_" not in value
        assert "*Sources:*" in value and (workspace / "shop/pricing.py").as_uri() in value

        out = await command(client, "engram.explainWorkspace", {"question": "How does the HTTP client retry?"})
        assert out["markdown"].strip() and any(c["path"] == "net/http_client.py" for c in out["citations"])
        status = await command(client, "engram.status")
        assert "Qwen" in status["models"]["coding"]["model"]
    finally:
        await stop(client)
