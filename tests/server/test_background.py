"""The server's two threads: a search never waits behind an index, and typing pauses settle the syntax structure."""

from tests.retrieval.conftest import make_workspace

from .conftest import command, indexed, open_doc, change, search, start, stop, until


async def test_a_search_answers_while_the_workspace_is_still_indexing(tmp_path):
    """3,000 files take many seconds to index; a search sent at once is answered from what is indexed so far.
    A search that waited for the whole index (the old barrier on the one encoder thread) would find indexing over."""
    root = make_workspace(tmp_path / "ws")
    bulk = root / "bulk"
    for i in range(3000):
        d = bulk / f"p{i // 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(f"def handler_{i}(request):\n    return request.value * {i}\n\n"
                                      f"class Model{i}:\n    field = {i}\n")
    client = await start(root, tmp_path / "cache")
    try:
        async def begun():  # files are being read and encoded on the background thread
            info = next(iter((await command(client, "engram.status"))["index"].values()), None)
            return info and info["indexing"] and info["files"] > 0
        await until(begun, timeout=120, what="indexing to begin")
        await search(client, "handler request value", 3)
        info = next(iter((await command(client, "engram.status"))["index"].values()))
        assert info["indexing"], "the search waited for the whole workspace to be indexed"
        await indexed(client, timeout=600)
    finally:
        await stop(client)


async def test_a_typing_pause_settles_the_syntax_structure(tmp_path):
    """A function typed into the middle of a file becomes its own chunk once typing pauses (settle), without a
    save; until then the keystroke path keeps the edit inside the chunk it was typed in."""
    root = make_workspace(tmp_path / "ws")
    client = await start(root, tmp_path / "cache")
    try:
        await indexed(client)
        path = root / "shop/cart.py"
        uri = open_doc(client, path)
        lines = path.read_text().split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("def ") or line.startswith("class "))
        change(client, uri, 2, (at, 0), (at, 0), "def freshly_typed_wombat(x):\n    return x + 1\n\n\n")

        # (searches do not settle; engram.documentState does, so it must not be what this test watches)
        async def settled():
            top = (await search(client, "freshly typed wombat", 1))[0]
            return top["path"] == "shop/cart.py" and (top["start_line"], top["end_line"]) == (at + 1, at + 2)
        await until(settled, timeout=120, what="the typed function to become its own chunk")
    finally:
        await stop(client)


def test_start_up_warms_the_compiled_kernels_and_freezes_what_is_alive():
    """A full collection must not traverse numba's ~100k start-up objects with the GIL held while an index runs."""
    import gc

    from engram_ls.retrieval import compiled, kernels
    from engram_ls.server.state import warm_and_freeze

    try:
        warm_and_freeze()
        assert kernels._fast is compiled
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_start_up_does_not_run_a_full_collection_itself(monkeypatch):
    """The collection before the freeze was itself a 0.27 s GIL-held stall at every start: only the young
    generations are collected there."""
    import gc

    from engram_ls.server.state import warm_and_freeze

    asked = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda generation=2: asked.append(generation) or real(min(generation, 1)))
    try:
        warm_and_freeze()
    finally:
        gc.unfreeze()
    assert asked and max(asked) < 2
