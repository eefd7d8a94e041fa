"""Hover: fast path without a model, model path with citations."""

from lsprotocol import types

from .conftest import indexed, open_doc, start, stop


def hover(client, uri, line, character):
    return client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character)))


async def test_hover_explains_with_the_model_and_cites(client, workspace):
    uri = open_doc(client, workspace / "shop/cart.py")
    result = await hover(client, uri, 14, 16)  # on apply_discount(...)
    value = result.contents.value
    assert value.startswith("**apply_discount** — stub_")
    assert f"]({(workspace / 'shop/pricing.py').as_uri()}#L" in value
    assert "*Sources:*" in value


async def test_fast_path_without_a_model(workspace, tmp_path):
    client = await start(workspace, tmp_path / "cache",
                         options={"backend": {"kind": "stub"}, "hover": {"useModel": False}})
    try:
        await indexed(client)
        uri = open_doc(client, workspace / "shop/cart.py")
        value = (await hover(client, uri, 14, 16)).contents.value
        assert "stub_" not in value
        assert "[shop/pricing.py:" in value and "def apply_discount" in value
    finally:
        await stop(client)


async def test_slow_model_falls_back_to_the_fast_path(workspace, tmp_path):
    client = await start(workspace, tmp_path / "cache", options={
        "backend": {"kind": "stub"}, "inference": {"stubDelayMs": 500}, "hover": {"modelTimeoutMs": 300}})
    try:
        await indexed(client)
        uri = open_doc(client, workspace / "shop/cart.py")
        value = (await hover(client, uri, 14, 16)).contents.value
        assert "stub_" not in value and "[shop/pricing.py:" in value
    finally:
        await stop(client)


async def test_hover_on_whitespace_is_empty(client, workspace):
    uri = open_doc(client, workspace / "shop/cart.py")
    assert await hover(client, uri, 1, 0) is None
