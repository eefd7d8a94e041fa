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


async def hover_stats(client) -> dict:
    from .conftest import command

    return (await command(client, "engram.status"))["hover"]


async def test_slow_model_falls_back_says_so_and_the_next_hover_shows_the_explanation(workspace, tmp_path):
    from .conftest import change, until

    client = await start(workspace, tmp_path / "cache", options={
        "backend": {"kind": "stub"}, "inference": {"stubDelayMs": 20}, "hover": {"modelTimeoutMs": 1, "maxTokens": 8}})
    try:
        await indexed(client)
        uri = open_doc(client, workspace / "shop/cart.py")
        first = (await hover(client, uri, 14, 16)).contents.value
        assert first.startswith("*An explanation from the model is on its way") and "stub_" not in first
        assert "[shop/pricing.py:" in first  # the fast path answered

        async def explained():
            return (await hover_stats(client))["explained"] == 1
        await until(explained, what="the background explanation")
        second = (await hover(client, uri, 14, 16)).contents.value
        assert second.startswith("**apply_discount** — stub_") and "[shop/pricing.py:" in second
        third = (await hover(client, uri, 14, 16)).contents.value
        assert third == second
        stats = await hover_stats(client)
        assert stats["hits"] == 2 and stats["explained"] == 1  # served from the cache, no new generation

        # the code the explanation was made from changes: the cached one is not reused
        pricing = open_doc(client, workspace / "shop/pricing.py")
        change(client, pricing, 2, (4, 0), (4, 0), "    # orders over 100 only\n")
        fourth = (await hover(client, uri, 14, 16)).contents.value
        assert fourth.startswith("*An explanation from the model is on its way")
    finally:
        await stop(client)


async def test_fast_path_answers_at_once_while_the_model_is_not_ready(workspace, tmp_path):
    """The stub takes 60 s per token, so warming takes a minute: a hover that waited for the model (the timeout
    allows 120 s) would return its text, not the note."""
    from .conftest import command

    client = await start(workspace, tmp_path / "cache", options={
        "backend": {"kind": "stub"}, "inference": {"stubDelayMs": 60000}, "hover": {"modelTimeoutMs": 120000}})
    try:
        await indexed(client)
        uri = open_doc(client, workspace / "shop/cart.py")
        value = (await hover(client, uri, 14, 16)).contents.value
        assert value.startswith("*An explanation from the model is on its way") and "[shop/pricing.py:" in value
        assert (await command(client, "engram.status"))["models"]["warm"] is False
    finally:
        await stop(client)


def test_model_prose_is_unwrapped_for_the_editor_to_wrap():
    from engram_ls.server.hover import prose

    text = "It takes an amount\nand returns it\ndiscounted.\n\n- one\n- two\n\n```python\nx = 1\ny = 2\n```"
    assert prose(text) == ("It takes an amount and returns it discounted.\n\n- one\n- two\n\n"
                           "```python\nx = 1\ny = 2\n```")


async def test_a_hover_the_token_limit_cut_ends_at_a_word_and_says_so(workspace, tmp_path):
    """The stub model always runs to the limit and writes no sentence: the hover keeps whole words only."""
    client = await start(workspace, tmp_path / "cache",
                         options={"backend": {"kind": "stub"}, "hover": {"maxTokens": 5}})
    try:
        await indexed(client)
        uri = open_doc(client, workspace / "shop/cart.py")
        first = (await hover(client, uri, 14, 16)).contents.value.split("\n\n")[0]
        assert first.startswith("**apply_discount** — stub_") and first.endswith(" w3 … *(cut at 5 tokens)*")
    finally:
        await stop(client)


def test_the_fast_path_shows_the_lines_that_name_the_symbol():
    from engram_ls.retrieval import Hit
    from pathlib import Path

    from engram_ls.server.hover import fast_markdown

    body = "\n".join([f"    step_{i} = {i}" for i in range(12)] + ["    total = apply_discount(step_3)"] +
                     [f"    more_{i} = {i}" for i in range(10)])
    text = fast_markdown("apply_discount", [(Path("/ws"), Hit("shop/cart.py", 40, 62, 1.0, body))])
    assert "apply_discount(step_3)" in text               # line 13 of the chunk: past the first 8
    assert "shop/cart.py:51-58" in text and "#L51)" in text   # the link points at the lines shown
    short = fast_markdown("step_1", [(Path("/ws"), Hit("shop/cart.py", 40, 62, 1.0, body))])
    assert "step_0 = 0" in short and "shop/cart.py:40-47" in short   # near the top: from the chunk's start
