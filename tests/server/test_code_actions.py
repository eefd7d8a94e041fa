"""Code actions: listed at once, a model runs only when one is resolved."""

import json

from lsprotocol import types
from lsprotocol.types import CodeAction

from .conftest import indexed, open_doc, start, stop
from .test_commands import models_ready


def fix_decoding(client):
    """lsprotocol decodes a CodeAction that carries a nested command as a Command on the client side."""
    converter = client.protocol._converter
    converter.register_structure_hook(
        types.CodeAction | types.Command,
        lambda obj, _: converter.structure(obj, CodeAction if "title" in obj and (
            "kind" in obj or "data" in obj or "edit" in obj or isinstance(obj.get("command"), dict))
            else types.Command))


async def actions(client, uri, start, end):
    return await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri),
        range=types.Range(types.Position(*start), types.Position(*end)),
        context=types.CodeActionContext(diagnostics=[])))


async def test_actions_are_listed_without_running_a_model(workspace, tmp_path, monkeypatch):
    frames = tmp_path / "frames.jsonl"  # the server appends every frame it sends to a worker
    monkeypatch.setenv("ENGRAM_LS_TRACE_FRAMES", str(frames))

    def generations() -> int:
        lines = frames.read_text().splitlines() if frames.exists() else []
        return sum(json.loads(line)["type"] == "generate" for line in lines)

    client = await start(workspace, tmp_path / "cache")
    try:
        await indexed(client)
        fix_decoding(client)
        await models_ready(client)  # the workers are up: a model *could* run now
        before = generations()
        uri = open_doc(client, workspace / "shop/pricing.py")
        listed = await actions(client, uri, (3, 0), (8, 0))
        assert [a.title for a in listed] == ["Engram: Explain selection", "Engram: Refactor selection…",
                                             "Engram: Add docstring", "Engram: Generate tests",
                                             "Engram: Find similar code"]
        assert all(a.edit is None and a.command is None for a in listed)
        assert generations() == before  # listing sent no generation to any worker
        from pygls.exceptions import JsonRpcException

        try:
            await client.code_action_resolve_async(next(a for a in listed if a.title == "Engram: Add docstring"))
            retried = 0
        except JsonRpcException as e:  # the stub's words do not parse as code: asked once more, then refused
            assert "no valid edit" in str(e)
            retried = 1
        assert generations() == before + 1 + retried  # resolving the one picked runs the model
    finally:
        await stop(client)


async def test_resolve_docstring_returns_a_reviewable_edit(coder_client, workspace):
    client = coder_client
    fix_decoding(client)
    uri = open_doc(client, workspace / "shop/pricing.py")
    listed = await actions(client, uri, (3, 0), (8, 0))
    doc_action = next(a for a in listed if a.title == "Engram: Add docstring")
    resolved = await client.code_action_resolve_async(doc_action)
    change = resolved.edit.document_changes[0]
    assert change.text_document.uri == uri
    assert change.edits[0].new_text.startswith("# reviewed by the scripted model\ndef apply_discount(amount):")
    assert any("add a concise docstring" in p for p in client.coder.prompts)
    assert resolved.edit.change_annotations["engram-ls"].needs_confirmation


async def test_resolve_tests_creates_a_file_inside_the_workspace(coder_client, workspace):
    client = coder_client
    fix_decoding(client)
    uri = open_doc(client, workspace / "shop/pricing.py")
    listed = await actions(client, uri, (3, 0), (3, 0))  # empty selection: the enclosing function
    action = next(a for a in listed if a.title == "Engram: Generate tests")
    assert action.data["range"]["start"]["line"] == 3
    resolved = await client.code_action_resolve_async(action)
    create = resolved.edit.document_changes[0]
    assert create.kind == "create" and create.uri == (workspace / "tests/test_pricing.py").as_uri()
    assert resolved.edit.document_changes[1].edits[0].new_text == "def test_scripted():\n    assert 1 + 1 == 2\n"


async def test_resolve_explain_and_similar_become_commands(client, workspace):
    fix_decoding(client)
    uri = open_doc(client, workspace / "shop/pricing.py")
    listed = await actions(client, uri, (3, 0), (8, 0))
    explain = await client.code_action_resolve_async(listed[0])
    assert explain.command.command == "engram.explainSelection"
    out = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        explain.command.command, explain.command.arguments))
    assert out["citations"]
    similar = await client.code_action_resolve_async(listed[-1])
    out = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        similar.command.command, similar.command.arguments))
    assert out["results"]  # the selection itself is never its own "similar code"
    assert not any(r["path"] == "shop/pricing.py" and r["start_line"] <= 9 and r["end_line"] >= 4
                   for r in out["results"])


async def test_only_filter_and_foreign_actions(client, workspace):
    fix_decoding(client)
    uri = open_doc(client, workspace / "shop/pricing.py")
    listed = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri),
        range=types.Range(types.Position(3, 0), types.Position(8, 0)),
        context=types.CodeActionContext(diagnostics=[], only=[types.CodeActionKind.Refactor])))
    assert {a.title for a in listed} == {"Engram: Refactor selection…", "Engram: Add docstring",
                                         "Engram: Generate tests"}
    try:
        await client.code_action_resolve_async(types.CodeAction(title="x", data={"action": "rm -rf"}))
        raise AssertionError("expected an error")
    except Exception as e:
        assert "not made by engram-ls" in str(e)
