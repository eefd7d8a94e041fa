"""Code actions: listed at once, a model runs only when one is resolved."""

from lsprotocol import types
from lsprotocol.types import CodeAction

from .conftest import open_doc


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


async def test_actions_are_listed_without_running_a_model(client, workspace):
    fix_decoding(client)
    uri = open_doc(client, workspace / "shop/pricing.py")
    listed = await actions(client, uri, (3, 0), (8, 0))
    assert [a.title for a in listed] == ["Engram: Explain selection", "Engram: Refactor selection…",
                                         "Engram: Add docstring", "Engram: Generate tests",
                                         "Engram: Find similar code"]
    assert all(a.edit is None and a.command is None for a in listed)
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams("engram.status"))
    assert status["models"].get("coding", {}).get("busy", 0) == 0


async def test_resolve_docstring_returns_a_reviewable_edit(client, workspace):
    fix_decoding(client)
    uri = open_doc(client, workspace / "shop/pricing.py")
    listed = await actions(client, uri, (3, 0), (8, 0))
    doc_action = next(a for a in listed if a.title == "Engram: Add docstring")
    resolved = await client.code_action_resolve_async(doc_action)
    change = resolved.edit.document_changes[0]
    assert change.text_document.uri == uri
    assert change.edits[0].new_text.startswith("stub_")
    assert resolved.edit.change_annotations["engram-ls"].needs_confirmation


async def test_resolve_tests_creates_a_file_inside_the_workspace(client, workspace):
    fix_decoding(client)
    uri = open_doc(client, workspace / "shop/pricing.py")
    listed = await actions(client, uri, (3, 0), (3, 0))  # empty selection: the enclosing function
    action = next(a for a in listed if a.title == "Engram: Generate tests")
    assert action.data["range"]["start"]["line"] == 3
    resolved = await client.code_action_resolve_async(action)
    create = resolved.edit.document_changes[0]
    assert create.kind == "create" and create.uri == (workspace / "tests/test_pricing.py").as_uri()


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
