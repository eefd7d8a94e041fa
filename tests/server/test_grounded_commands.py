"""Grounded or silent, and code that parses, over real LSP with real worker processes (stub backend)."""

import json

import pytest
from pygls.exceptions import JsonRpcException

from .conftest import command, indexed, open_doc, start, stop, until


async def warmed(client) -> None:
    """Every worker of both pools up, warmed (warming sends generations of its own) and idle."""
    async def ready():
        models = (await command(client, "engram.status"))["models"]
        pools = [models.get(role) for role in ("coding", "research")]
        up = all(isinstance(p, dict) and p["alive"] == p["size"] and p["busy"] == 0 for p in pools)
        return models if up and models.get("warm", True) else None
    await until(ready, what="the model workers")


@pytest.fixture
def generations(tmp_path, monkeypatch):
    frames = tmp_path / "frames.jsonl"  # the server appends every frame it sends to a worker
    monkeypatch.setenv("ENGRAM_LS_TRACE_FRAMES", str(frames))

    def count() -> int:
        lines = frames.read_text().splitlines() if frames.exists() else []
        return sum(json.loads(line)["type"] == "generate" for line in lines)
    return count


async def test_explain_workspace_without_matching_code_asks_no_model(workspace, tmp_path, generations):
    client = await start(workspace, tmp_path / "cache")
    try:
        await indexed(client)
        await warmed(client)
        before = generations()
        out = await command(client, "engram.explainWorkspace",
                            {"question": "How does the feed parser retry multipart headers?"})
        assert out["grounded"] is False and out["citations"] == []
        assert out["markdown"].startswith("Nothing in the workspace matched the question, so the model was not "
                                          "asked.")
        assert "Nearest hits" in out["markdown"] and any(h["path"] == "net/http_client.py" for h in out["nearest"])
        assert generations() == before
        answered = await command(client, "engram.explainWorkspace", {"question": "How is the discount applied?"})
        assert answered["markdown"].startswith("stub_") and generations() == before + 1
    finally:
        await stop(client)


async def test_an_edit_that_does_not_parse_is_regenerated_once_then_refused(workspace, tmp_path, generations):
    """Replacing half of apply_discount (lines 4-7 of 8) with the stub's one-line answer would leave the rest of
    the function indented under nothing: the parser rejects it, the model is asked once more, then the request
    fails with a clear message and no edit is offered."""
    client = await start(workspace, tmp_path / "cache")
    try:
        await indexed(client)
        await warmed(client)
        before = generations()
        uri = open_doc(client, workspace / "shop/pricing.py")
        with pytest.raises(JsonRpcException) as e:
            await command(client, "engram.refactorSelection", {
                "uri": uri, "range": {"start": {"line": 3, "character": 0}, "end": {"line": 7, "character": 0}},
                "instruction": "use a constant", "apply": False})
        assert e.value.code == -32803
        assert "no valid edit was produced" in str(e.value) and "python line" in str(e.value)
        assert generations() == before + 2  # the first answer and one retry, never more
        assert not client.applied_edits
    finally:
        await stop(client)


GETADDRESSES = '''from email._parseaddr import AddressList as _AddressList

COMMASPACE = ", "


def getaddresses(fieldvalues):
    """Return a list of (REALNAME, EMAIL) for each fieldvalue."""
    all = COMMASPACE.join(str(v) for v in fieldvalues)
    a = _AddressList(all)
    return a.addresslist
'''


@pytest.mark.model
async def test_the_real_model_refactoring_getaddresses_offers_only_code_that_parses(tmp_path, generations):
    """The issue's case, with the shipped model: whatever it writes, an offered edit parses and does not make
    getaddresses call itself; otherwise the request says that no valid edit was produced."""
    from engram_ls.server.code_check import edit_problem, recursion_problem

    ws = tmp_path / "ws"
    (ws / "mail").mkdir(parents=True)
    (ws / "mail" / "utils.py").write_text(GETADDRESSES)
    client = await start(ws, tmp_path / "cache", options={"inference": {"requestTimeoutS": 300}})
    try:
        await indexed(client)
        uri = open_doc(client, ws / "mail" / "utils.py")
        try:
            out = await command(client, "engram.refactorSelection", {
                "uri": uri, "range": {"start": {"line": 5, "character": 0}, "end": {"line": 10, "character": 0}},
                "instruction": "Refactor getaddresses for readability", "apply": False})
        except JsonRpcException as e:
            assert "no valid edit was produced" in str(e), e
            print(f"refused: {e}")
            return
        new_text = out["edit"]["documentChanges"][0]["edits"][0]["newText"]
        print(f"offered ({generations()} generations so far):\n{new_text}")
        original = "\n".join(GETADDRESSES.splitlines()[5:10])
        assert edit_problem(GETADDRESSES, 5, 9, new_text, "python") is None, new_text
        assert recursion_problem(original, new_text, "python") is None, new_text
    finally:
        await stop(client)
