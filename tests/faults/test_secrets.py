"""Fault row 6: planted secrets never reach the store or a prompt (the test reads every frame sent to a worker)."""

import json
import os

from lsprotocol import types
from pytest_lsp import ClientServerConfig

from tests.server.conftest import SERVER, capabilities, command, indexed, open_doc, stop

AWS = "AKIA" + "Z7Q2M4N8P1R5T3W6"
GH = "ghp_" + "4f8Kq2Lm9Xz7Vb3Nc6Jd1Hs5Tg0Yw8Re2Ua"
PEM_BODY = "MIIEpAIBAAKCAQEA7bq9" + "Zk3LmQ8nXv2"
DB_PASSWORD = "Tr0ub4dor&3-" + "horse-staple"
SECRETS = [AWS, GH, PEM_BODY, DB_PASSWORD, "sk-live-" + "a1b2c3d4e5f6g7h8i9j0"]


def plant(ws):
    (ws / ".env").write_text(f"OPENAI_API_KEY=sk-live-a1b2c3d4e5f6g7h8i9j0\nAWS_ACCESS_KEY_ID={AWS}\n")
    (ws / "deploy").mkdir()
    (ws / "deploy/id_rsa").write_text(f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n")
    (ws / "config.yaml").write_text(f"database:\n  user: shop\n  password: \"{DB_PASSWORD}\"\n")
    (ws / "shop/cloud.py").write_text(
        f"GITHUB_TOKEN = \"{GH}\"\nAWS_KEY = \"{AWS}\"\n\n\ndef upload_receipt(cart):\n"
        "    \"\"\"Upload the receipt of a cart to the cloud bucket.\"\"\"\n    return cart\n")


async def test_secrets_never_reach_the_store_or_a_worker(workspace, tmp_path):
    plant(workspace)
    trace = tmp_path / "frames.jsonl"
    config = ClientServerConfig(server_command=SERVER, server_env=dict(
        os.environ, ENGRAM_LS_CACHE=str(tmp_path / "cache"), ENGRAM_LS_TRACE_FRAMES=str(trace)))
    client = await config.start()
    try:
        await client.initialize_session(types.InitializeParams(
            capabilities=capabilities("vscode"), initialization_options={"backend": {"kind": "stub"},
                                                                         "completion": {"debounceMs": 0}},
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]))
        await indexed(client)
        await command(client, "engram.explainWorkspace",
                      {"question": "What are the AWS access key, the GitHub token and the database password?"})
        uri = open_doc(client, workspace / "shop/cloud.py")
        await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(4, 6)))
        await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(6, 15),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        env_uri = open_doc(client, workspace / ".env", language="dotenv")
        assert await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(env_uri), position=types.Position(1, 0),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked))) is None
        results = (await command(client, "engram.search", {"query": "AWS key GitHub token password", "k": 20}))
        paths = {r["path"] for r in results["results"]}
        assert not paths & {".env", "deploy/id_rsa"}
        status = await command(client, "engram.status")
    finally:
        await stop(client)
    frames = trace.read_text()
    generates = [json.loads(line) for line in frames.splitlines() if '"generate"' in line]
    assert len(generates) >= 3  # explain, hover, completion all reached a worker
    assert "upload_receipt" in frames  # the code around the secrets did reach the model
    store = next(iter(status["index"].values()))["store_path"]
    store_bytes = open(store, "rb").read()
    for secret in SECRETS:
        assert secret not in frames, f"{secret[:6]}… reached a worker"
        assert secret.encode() not in store_bytes, f"{secret[:6]}… reached the store"
