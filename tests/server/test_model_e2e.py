"""The language server with the real shipped Qwen2.5-Coder-0.5B model in its workers."""

import pytest
from lsprotocol import types

from .conftest import command, indexed, open_doc, start, stop, until

pytestmark = pytest.mark.model

REAL = {"completion": {"debounceMs": 0, "maxTokens": 24}, "hover": {"modelTimeoutMs": 120000, "maxTokens": 40}}


async def warm(client) -> dict:
    """Waits until the workers have loaded and generated once (they warm up in the background)."""
    async def ready():
        models = (await command(client, "engram.status"))["models"]
        return models if models.get("warm") else None
    return await until(ready, timeout=300, what="the model workers to warm up")


async def test_real_model_completion_hover_and_explain(workspace, tmp_path):
    """Also: gpuLayers reaches llama.cpp (0, and 2 which a CPU build ignores) and the model still runs."""
    gpu = {"models": {"coding": {"gpuLayers": 0}, "research": {"gpuLayers": 2}}}
    client = await start(workspace, tmp_path / "cache", options={**REAL, **gpu})
    try:
        await indexed(client)
        models = await warm(client)
        assert models["coding"]["gpu_layers"] == 0 and models["research"]["gpu_layers"] == 2
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


async def test_real_model_supersede_code_action_and_refactor(workspace, tmp_path, monkeypatch):
    import asyncio

    from .test_code_actions import actions, fix_decoding
    from .test_completion import generation_sent, sent_frames

    trace = tmp_path / "frames.jsonl"
    monkeypatch.setenv("ENGRAM_LS_TRACE_FRAMES", str(trace))
    client = await start(workspace, tmp_path / "cache", options=REAL)
    try:
        await indexed(client)
        await warm(client)
        fix_decoding(client)
        uri = open_doc(client, workspace / "shop/cart.py")

        def inline():
            return client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri), position=types.Position(14, 8),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)))

        first = asyncio.ensure_future(inline())
        first_id = await generation_sent(trace)  # the first generation is running in the worker
        second = await inline()  # supersedes the first: its generation is cancelled in the worker
        assert await first is None and second is not None and second.items[0].insert_text.strip()
        assert {"type": "cancel", "id": first_id} in sent_frames(trace)
        stats = (await command(client, "engram.status"))["completion"]
        assert stats["returned"] == 1 and stats["superseded"] + stats["discarded"] >= 1  # never two answers

        pricing = open_doc(client, workspace / "shop/pricing.py")
        listed = await actions(client, pricing, (3, 0), (8, 0))
        doc_action = next(a for a in listed if a.title == "Engram: Add docstring")
        resolved = await client.code_action_resolve_async(doc_action)
        new_text = resolved.edit.document_changes[0].edits[0].new_text
        assert "def apply_discount" in new_text

        out = await command(client, "engram.refactorSelection", {
            "uri": pricing, "range": {"start": {"line": 3, "character": 0}, "end": {"line": 7, "character": 17}},
            "instruction": "rename the parameter amount to total", "apply": False})
        edited = out["edit"]["documentChanges"][0]["edits"][0]["newText"]
        assert "def apply_discount" in edited and out["files"] == [pricing]
    finally:
        await stop(client)
