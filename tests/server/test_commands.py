"""Workspace commands and the engram/search request, end to end over stdio."""

import pytest
from lsprotocol import types

from .conftest import command, indexed, open_doc, search, start, stop, until


async def models_ready(client) -> dict:
    """The ``models`` part of engram.status once every worker of both pools is up, warmed and idle."""
    async def ready():
        models = (await command(client, "engram.status"))["models"]
        pools = [models.get(role) for role in ("coding", "research")]
        up = all(isinstance(p, dict) and p["alive"] == p["size"] and p["busy"] == 0 for p in pools)
        return models if up and models.get("warm", True) else None
    return await until(ready, what="the model workers")


async def test_capabilities_advertise_every_feature(client):
    caps = client.init_result.capabilities
    assert set(caps.execute_command_provider.commands) >= {
        "engram.explainWorkspace", "engram.explainSelection", "engram.refactorWorkspace", "engram.refactorSelection",
        "engram.search", "engram.reindex", "engram.status"}
    assert caps.inline_completion_provider is not None and caps.completion_provider is None  # VS Code: ghost text
    assert caps.hover_provider
    assert caps.code_action_provider.resolve_provider is True
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental


async def test_indexing_reports_work_done_progress(client):
    kinds = [type(v).__name__ for reports in client.progress_reports.values() for v in reports]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"


async def test_search_command_and_request_return_the_cli_json(client, workspace):
    results = await search(client, "download a web page", k=3)
    top = results[0]
    assert top["path"] == "net/http_client.py" and top["start_line"] == 4
    assert top["uri"] == (workspace / "net/http_client.py").as_uri()
    assert set(top) == {"path", "uri", "start_line", "end_line", "score", "text"}
    raw = await client.protocol.send_request_async("engram/search", {"query": "download a web page", "k": 3})
    assert raw.results[0].path == "net/http_client.py"  # the test client decodes unknown results as tuples


async def test_status_and_reindex(client, workspace):
    status = await command(client, "engram.status")
    assert status["roots"] == [str(workspace.resolve())]
    models = await models_ready(client)
    assert models["backend"] == "stub"  # the backend the client configured, not the default
    assert models["coding"]["model"] == models["research"]["model"] == "stub"
    (workspace / "net/extra.py").write_text("def unique_marker_function():\n    return 42\n")
    result = await command(client, "engram.reindex")
    assert result["files"] == 6 and result["chunks"] > 0
    assert (await search(client, "unique marker function", 1))[0]["path"] == "net/extra.py"


async def test_explain_workspace_answers_with_citations_and_shows_a_document(client):
    out = await command(client, "engram.explainWorkspace", {"question": "How is the discount applied?"})
    assert out["markdown"].startswith("stub_")  # the stub model's answer
    assert any(c["path"] == "shop/pricing.py" for c in out["citations"])
    assert "## Sources" in out["markdown"] and "file://" in out["markdown"]
    assert client.shown_documents and client.shown_documents[-1].uri == out["uri"]


async def test_explain_selection(client, workspace):
    uri = open_doc(client, workspace / "shop/pricing.py")
    out = await command(client, "engram.explainSelection", {
        "uri": uri, "range": {"start": {"line": 3, "character": 0}, "end": {"line": 8, "character": 0}}})
    assert "## Retrieved code" in out["markdown"] and out["citations"]


async def test_refactor_selection_returns_a_reviewable_edit(coder_client, workspace):
    client = coder_client
    uri = open_doc(client, workspace / "shop/pricing.py")
    out = await command(client, "engram.refactorSelection", {
        "uri": uri, "range": {"start": {"line": 3, "character": 0}, "end": {"line": 7, "character": 0}},
        "instruction": "use a constant", "apply": False})
    assert out["applied"] is False and out["files"] == [uri]
    edit = out["edit"]
    assert edit["changeAnnotations"]["engram-ls"]["needsConfirmation"] is True
    change = edit["documentChanges"][0]
    assert change["textDocument"]["uri"] == uri and change["edits"][0]["annotationId"] == "engram-ls"
    assert change["edits"][0]["newText"].startswith("# reviewed by the scripted model\ndef apply_discount(amount):")
    assert not client.applied_edits


async def test_refactor_workspace_sends_apply_edit_for_review(coder_client, workspace):
    client = coder_client
    out = await command(client, "engram.refactorWorkspace", {"instruction": "rename fetch_url to download_page"})
    assert out["applied"] is True and out["files"]
    assert client.applied_edits
    applied = client.applied_edits[-1].edit
    assert applied.change_annotations["engram-ls"].needs_confirmation
    for change in applied.document_changes:
        assert change.text_document.uri.startswith(workspace.as_uri())


@pytest.mark.parametrize("name,arg,needle", [
    ("engram.search", {"query": ""}, "query"),
    ("engram.search", {"query": "x", "k": 0}, "'k'"),
    ("engram.search", ["not", "an", "object"], "object argument"),
    ("engram.explainWorkspace", {}, "question"),
    ("engram.explainSelection", {"uri": "file:///x.py", "range": {"start": {}}}, "range"),
    ("engram.nope", None, "not defined"),
])
async def test_bad_arguments_get_clear_errors_and_the_server_keeps_serving(client, name, arg, needle):
    with pytest.raises(Exception) as e:
        await command(client, name, arg)
    assert needle in str(e.value)
    assert (await search(client, "download a web page", 1))[0]["path"] == "net/http_client.py"


async def test_multi_root_workspace_and_folder_changes(tmp_path):
    from tests.retrieval.conftest import make_workspace

    a = make_workspace(tmp_path / "a", {"alpha.py": "def alpha_only_function():\n    pass\n"})
    b = make_workspace(tmp_path / "b", {"beta.py": "def beta_only_function():\n    pass\n"})
    c = make_workspace(tmp_path / "c", {"gamma.py": "def gamma_only_function():\n    pass\n"})
    client = await start([a, b], tmp_path / "cache")
    try:
        await indexed(client)
        assert (await search(client, "alpha only function", 1))[0]["uri"] == (a / "alpha.py").as_uri()
        assert (await search(client, "beta only function", 1))[0]["uri"] == (b / "beta.py").as_uri()
        client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=c.as_uri(), name="c")],
                removed=[types.WorkspaceFolder(uri=a.as_uri(), name="a")])))
        status = await indexed(client)
        assert set(status["roots"]) == {str(b.resolve()), str(c.resolve())}
        assert (await search(client, "gamma only function", 1))[0]["uri"] == (c / "gamma.py").as_uri()
        assert all(r["uri"] != (a / "alpha.py").as_uri() for r in await search(client, "alpha only function", 3))
    finally:
        await stop(client)


@pytest.fixture
def failing_model():
    """An OpenAI-compatible server on 127.0.0.1 that answers every generation with HTTP 500."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Broken(BaseHTTPRequestHandler):
        calls = 0

        def log_message(self, *a):
            pass

        def do_POST(self):
            Broken.calls += 1
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_error(500, "the model crashed")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Broken
    httpd.shutdown()


async def test_a_model_failure_gets_the_same_error_code_from_every_command(workspace, tmp_path, failing_model):
    """One table maps internal errors to JSON-RPC codes: a model that cannot answer is -32803 (RequestFailed)
    from a selection command and the workspace refactoring alike; bad arguments stay -32602."""
    from pygls.exceptions import JsonRpcException

    url, broken = failing_model
    client = await start(workspace, tmp_path / "cache", options={"backend": {"kind": "openai", "url": url}})
    try:
        await indexed(client)
        uri = open_doc(client, workspace / "shop/pricing.py")
        rng = {"start": {"line": 3, "character": 0}, "end": {"line": 7, "character": 0}}
        codes = {}
        for name, arg in (("engram.refactorSelection", {"uri": uri, "range": rng, "apply": False}),
                          ("engram.refactorWorkspace", {"instruction": "make apply_discount use DISCOUNT_RATE", "apply": False}),
                          ("engram.refactorSelection", {"uri": uri, "range": {"start": {}}})):
            with pytest.raises(JsonRpcException) as e:
                await command(client, name, arg)
            codes.setdefault(name, []).append(e.value.code)
        assert codes == {"engram.refactorSelection": [-32803, -32602], "engram.refactorWorkspace": [-32803]}, codes
        assert broken.calls >= 2  # the model really was asked, and failed
        assert (await search(client, "download a web page", 1))[0]["path"] == "net/http_client.py"
    finally:
        await stop(client)
