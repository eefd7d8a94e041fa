"""Malformed JSON-RPC over a raw stdio pipe: every request gets an answer, the connection stays usable."""

import json
import os
import queue
import subprocess
import sys
import threading

import pytest

from .conftest import SERVER


class RawClient:
    def __init__(self, cache):
        self.proc = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=dict(os.environ, ENGRAM_LS_CACHE=str(cache)))
        self.inbox: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line in (b"\r\n", b"\n"):
                    break
            self.inbox.put(json.loads(out.read(length)))

    def send_raw(self, body: bytes, length: int | None = None):
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body)
        self.proc.stdin.flush()

    def send(self, msg: dict):
        self.send_raw(json.dumps(msg).encode())

    def response(self, msg_id, timeout=60):
        while True:
            msg = self.inbox.get(timeout=timeout)
            if msg.get("id") == msg_id and "method" not in msg:
                return msg

    def request(self, msg_id, method, params=None):
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return self.response(msg_id)

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def raw(tmp_path, workspace):
    client = RawClient(tmp_path / "cache")
    client.root = workspace
    yield client
    client.close()


def initialize(raw):
    result = raw.request(1, "initialize", {"processId": None, "rootUri": raw.root.as_uri(), "capabilities": {},
                                           "initializationOptions": {"backend": {"kind": "stub"}}})
    assert "capabilities" in result["result"]
    raw.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})


def test_request_before_initialize_is_refused(raw):
    reply = raw.request(7, "textDocument/hover", {"textDocument": {"uri": "file:///x.py"},
                                                  "position": {"line": 0, "character": 0}})
    assert reply["error"]["code"] == -32002
    initialize(raw)


def test_invalid_json_gets_a_parse_error_and_the_server_keeps_serving(raw):
    initialize(raw)
    raw.send_raw(b'{"jsonrpc": "2.0", "id": 5, "method": ')
    reply = raw.response(None)
    assert reply["error"]["code"] == -32700
    assert "result" in raw.request(6, "workspace/executeCommand", {"command": "engram.status", "arguments": []})


def test_wrong_param_types_and_invalid_positions_get_invalid_params(raw):
    initialize(raw)
    uri = (raw.root / "shop/cart.py").as_uri()
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": (raw.root / "shop/cart.py").read_text()}}})
    bad = raw.request(2, "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 0, "character": -1}})
    assert bad["error"]["code"] == -32602 and "textDocument/hover" in bad["error"]["message"]
    bad = raw.request(3, "textDocument/hover", {"textDocument": {"uri": uri}, "position": "top"})
    assert bad["error"]["code"] == -32602
    far = raw.request(4, "textDocument/hover", {"textDocument": {"uri": uri},
                                                "position": {"line": 10_000, "character": 0}})
    assert far["error"]["code"] == -32602 and "past the end" in far["error"]["message"]
    ok = raw.request(5, "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 14, "character": 16}})
    assert "result" in ok


def test_unknown_method_and_unknown_notification(raw):
    initialize(raw)
    assert raw.request(2, "engram/teleport", {})["error"]["code"] == -32601
    raw.send({"jsonrpc": "2.0", "method": "$/somethingElse", "params": {}})
    assert "result" in raw.request(3, "workspace/executeCommand", {"command": "engram.status"})


def test_requests_after_shutdown_are_refused_then_exit(raw):
    initialize(raw)
    assert raw.request(2, "shutdown")["result"] is None
    reply = raw.request(3, "workspace/executeCommand", {"command": "engram.status"})
    assert reply["error"]["code"] == -32600
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    assert raw.proc.wait(timeout=60) == 0


def test_notification_methods_sent_as_requests_still_get_an_answer(raw):
    """Found by bench/fuzz_lsp.py: pygls dropped the id of a notification method sent with one."""
    initialize(raw)
    reply = raw.request(9, "textDocument/didSave", {"textDocument": {"uri": "not a uri"}})
    assert reply["error"]["code"] == -32600 and "notification" in reply["error"]["message"]
    assert "result" in raw.request(10, "workspace/executeCommand", {"command": "engram.status"})


def test_nested_values_with_a_jsonrpc_key_do_not_lose_the_request(raw):
    """Found by bench/fuzz_lsp.py: pygls decoded any nested object with a "jsonrpc" key as a message and dropped
    the whole request."""
    initialize(raw)
    reply = raw.request(11, "engram/search", {"query": "cart", "extra": [{"jsonrpc": False, "x": None}]})
    assert "result" in reply or "error" in reply


def test_position_inside_a_surrogate_pair(raw):
    initialize(raw)
    uri = (raw.root / "emoji.py").as_uri()
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": "s = '😀😀'  # smile\nprint(s)\n"}}})
    # UTF-16 column 6 falls between the two halves of the first emoji
    reply = raw.request(12, "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 6}})
    assert "result" in reply
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": 2},
        "contentChanges": [{"range": {"start": {"line": 0, "character": 6}, "end": {"line": 0, "character": 7}},
                            "text": "x"}]}})
    assert "result" in raw.request(13, "workspace/executeCommand", {"command": "engram.status"})


def test_bad_content_length_is_a_parse_error_and_the_stream_recovers(raw):
    initialize(raw)
    body = b'{"jsonrpc": "2.0", "id": 14, "method": "shutdown"}'
    raw.send_raw(body, length=len(body) - 20)  # too short: the server sees truncated JSON
    assert raw.response(None)["error"]["code"] == -32700
    raw.proc.stdin.write(b"\r\n")  # the rest of the body is skipped as an unknown header line
    raw.proc.stdin.flush()
    assert "result" in raw.request(15, "workspace/executeCommand", {"command": "engram.status"})
