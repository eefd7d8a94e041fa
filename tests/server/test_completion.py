"""Inline completion and the completion fallback, with supersede and outdated-version handling."""

import asyncio
import contextlib
import json

import pytest
from lsprotocol import types

from engram_ls.server.completion import Shown, typed_ahead

from .conftest import STUB, change, command, indexed, open_doc, start, stop, until

# 40 ms a token, 48 tokens: a generation left to run takes about 2 s
SLOW_STUB = {"backend": {"kind": "stub"}, "inference": {"stubDelayMs": 40}, "completion": {"debounceMs": 0}}


def sent_frames(trace) -> list[dict]:
    """Every frame the server has sent to a worker so far (ENGRAM_LS_TRACE_FRAMES)."""
    return [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []


async def generation_sent(trace, after: int = 0) -> str:
    """Waits until the server has handed a completion to a worker (the generation is running) and returns its id."""
    async def sent():
        ids = [f["id"] for f in sent_frames(trace) if f["type"] == "generate" and f["id"].startswith("complete-")]
        return ids[after] if len(ids) > after else None
    return await until(sent, what="a completion handed to a worker")


@contextlib.asynccontextmanager
async def cart_open(workspace, tmp_path, monkeypatch, options):
    """A server started with ``options``, its frames to the workers traced, the workspace indexed and shop/cart.py
    open: (client, the trace file, the document's uri)."""
    trace = tmp_path / "frames.jsonl"
    monkeypatch.setenv("ENGRAM_LS_TRACE_FRAMES", str(trace))
    client = await start(workspace, tmp_path / "cache", options=options)
    try:
        await indexed(client)
        yield client, trace, open_doc(client, workspace / "shop/cart.py")
    finally:
        await stop(client)


def inline(client, uri, line, character):
    return client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)))


async def test_inline_completion_returns_model_text_at_the_cursor(client, workspace):
    uri = open_doc(client, workspace / "shop/cart.py")
    result = await inline(client, uri, 14, 8)
    item = result.items[0]
    assert item.insert_text.startswith("stub_")
    assert item.range.start == types.Position(14, 8) == item.range.end


async def test_neovim_gets_completion_items_instead(workspace, tmp_path):
    client = await start(workspace, tmp_path / "cache", kind="neovim")
    try:
        await indexed(client)
        assert client.init_result.capabilities.completion_provider is not None
        uri = open_doc(client, workspace / "shop/cart.py")
        result = await client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(14, 8)))
        item = result.items[0]
        assert item.text_edit.new_text.startswith("stub_") and item.label.startswith("stub_")
        assert "Context:" in item.documentation.value and "file://" in item.documentation.value
    finally:
        await stop(client)


async def test_completion_is_registered_from_the_configuration_at_initialize(workspace, tmp_path):
    """Inline completion for a client that has it (no duplicate completion items), completion items for one that
    does not, neither when completion is disabled."""
    for kind, options, inline, items in (("vscode", STUB, True, False), ("neovim", STUB, False, True),
                                         ("vscode", {**STUB, "completion": {"enabled": False}}, False, False),
                                         ("neovim", {**STUB, "completion": {"enabled": False}}, False, False)):
        client = await start(workspace, tmp_path / "cache", options=options, kind=kind)
        try:
            caps = client.init_result.capabilities
            assert (caps.inline_completion_provider is not None, caps.completion_provider is not None) == (
                inline, items), (kind, options)
            if not items:
                uri = open_doc(client, workspace / "shop/cart.py")
                with pytest.raises(Exception, match="textDocument/completion"):  # -32601: not offered at all
                    await client.text_document_completion_async(types.CompletionParams(
                        text_document=types.TextDocumentIdentifier(uri), position=types.Position(14, 8)))
        finally:
            await stop(client)


async def test_newer_request_supersedes_and_cancels_the_older(workspace, tmp_path, monkeypatch):
    async with cart_open(workspace, tmp_path, monkeypatch, SLOW_STUB) as (client, trace, uri):
        first = asyncio.ensure_future(inline(client, uri, 14, 8))
        first_id = await generation_sent(trace)  # the first generation is running in the worker now
        second = await inline(client, uri, 14, 8)
        assert second.items[0].insert_text.startswith("stub_")
        assert await first is None
        # the older generation was cancelled in its worker, not just dropped when it finished
        assert {"type": "cancel", "id": first_id} in sent_frames(trace)
        stats = (await command(client, "engram.status"))["completion"]
        assert stats["started"] == 2 and stats["superseded"] == 1 and stats["returned"] == 1
        assert stats["discarded"] == 1 and stats["wasted_tokens"] < 48  # it stopped before its 48 tokens
        assert (await command(client, "engram.status"))["models"]["coding"]["alive"] == 1


async def test_typing_on_a_line_keeps_its_snippets_within_the_prompt_budget(workspace, tmp_path, monkeypatch):
    """Keys typed on one line reuse the line's snippets (so llama.cpp re-reads only the line and what follows);
    a change above the line retrieves them again. Every completion carries the completion.contextTokens budget."""
    budget = {**STUB, "completion": {"debounceMs": 0, "contextTokens": 700}}
    async with cart_open(workspace, tmp_path, monkeypatch, budget) as (client, trace, uri):
        assert (await inline(client, uri, 14, 15)).items  # after "return ", before apply_discount(subtotal)
        change(client, uri, 2, (14, 15), (14, 15), "app")
        assert (await inline(client, uri, 14, 18)).items
        assert (await command(client, "engram.status"))["completion"]["context_reused"] == 1
        change(client, uri, 3, (13, 0), (13, 0), "        # a note above\n")
        assert (await inline(client, uri, 15, 18)).items
        assert (await command(client, "engram.status"))["completion"]["context_reused"] == 1  # retrieved again
        frames = [f for f in sent_frames(trace) if f["type"] == "generate" and f["id"].startswith("complete-")]
        assert len(frames) == 3 and all(f["budget"] == 700 for f in frames)
        assert frames[0]["snippets"] and frames[1]["snippets"] == frames[0]["snippets"]
        assert any("def apply_discount" in s["text"] for s in frames[0]["snippets"])



def test_typed_ahead_is_the_rest_of_the_last_suggestion_while_the_keys_match_it():
    last = Shown("x = ", "\n", "total(items)")
    assert typed_ahead(last, "x = tot", "\n") == "al(items)"
    assert typed_ahead(last, "x = total(items", "\n") == ")"
    assert typed_ahead(last, "x = total(items)", "\n") is None  # all of it typed: ask the model
    assert typed_ahead(last, "x = tox", "\n") is None            # a key it did not suggest
    assert typed_ahead(last, "x = ", "\n") is None               # nothing typed since
    assert typed_ahead(last, "y = tot", "\n") is None            # the text above changed
    assert typed_ahead(last, "x = tot", "\nz\n") is None        # so did the text below
    assert typed_ahead(None, "x = tot", "\n") is None


async def test_keys_that_type_the_suggestion_get_its_rest_without_the_model(workspace, tmp_path, monkeypatch):
    async with cart_open(workspace, tmp_path, monkeypatch, STUB) as (client, trace, uri):
        text = (await inline(client, uri, 14, 8)).items[0].insert_text
        change(client, uri, 2, (14, 8), (14, 8), text[:3])
        rest = (await inline(client, uri, 14, 11)).items[0]
        assert rest.insert_text == text[3:] and rest.range.start == types.Position(14, 11)
        stats = (await command(client, "engram.status"))["completion"]
        assert stats["typed_ahead"] == 1 and stats["started"] == 1
        change(client, uri, 3, (14, 11), (14, 11), "#")  # not what it suggested: the model again
        assert (await inline(client, uri, 14, 12)).items
        stats = (await command(client, "engram.status"))["completion"]
        assert stats["typed_ahead"] == 1 and stats["started"] == 2
        generated = [f for f in sent_frames(trace) if f["type"] == "generate" and f["id"].startswith("complete-")]
        assert len(generated) == 2

async def test_result_for_an_outdated_version_is_never_returned(workspace, tmp_path, monkeypatch):
    async with cart_open(workspace, tmp_path, monkeypatch, SLOW_STUB) as (client, trace, uri):
        pending = asyncio.ensure_future(inline(client, uri, 14, 8))
        await generation_sent(trace)  # the generation was made for version 1 and is running
        change(client, uri, 2, (0, 0), (0, 0), "# typed meanwhile\n")
        assert await pending is None
        stats = (await command(client, "engram.status"))["completion"]
        assert stats["started"] == 1 and stats["returned"] == 0 and stats["discarded"] == 1


async def test_completion_in_a_secret_file_never_reaches_a_model(client, workspace):
    env = workspace / "prod.env"
    env.write_text("DB_PASSWORD=\n")
    uri = open_doc(client, env, language="dotenv")
    assert await inline(client, uri, 0, 12) is None


async def test_invalid_positions_get_errors(client, workspace):
    uri = open_doc(client, workspace / "shop/cart.py")
    try:
        await inline(client, uri, 999, 0)
        raise AssertionError("expected an error")
    except Exception as e:
        assert "past the end" in str(e)
    ghost = (workspace / "nope.py").as_uri()
    try:
        await inline(client, ghost, 0, 0)
        raise AssertionError("expected an error")
    except Exception as e:
        assert "not open" in str(e)


async def test_inline_completion_sends_the_definition_of_the_name_at_the_cursor(workspace, tmp_path, monkeypatch):
    """The server's context is the completion context (``completion_context``): the definition of the imported
    name the line uses, from its own file, narrowed to its signature — not merely similar chunks."""
    async with cart_open(workspace, tmp_path, monkeypatch, STUB) as (client, trace, uri):
        assert (await inline(client, uri, 14, 8)).items[0].insert_text.startswith("stub_")
        frame = next(f for f in sent_frames(trace) if f["type"] == "generate" and f["mode"] == "fim"
                     and f["id"].startswith("complete-"))
        assert frame["snippets"][0]["path"] == "shop/pricing.py"
        assert frame["snippets"][0]["text"].startswith("def apply_discount(amount):")
        assert all(s["path"] != "shop/cart.py" for s in frame["snippets"])
