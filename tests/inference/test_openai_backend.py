"""The OpenAI-compatible backend against a stand-in server on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engram_ls.inference import Inference, InferenceError, Snippet

from .conftest import stub_settings


class StandIn(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StandIn.seen.append((self.path, body, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = ["Hello", " from", " the", " server"][: body.get("max_tokens", 4)]
        for w in words:
            if self.path.endswith("/chat/completions"):
                event = {"choices": [{"delta": {"content": w}}]}
            else:
                event = {"choices": [{"text": w}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    StandIn.seen.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def test_chat_and_fim_through_the_remote_server(server, monkeypatch):
    monkeypatch.setenv("TEAM_KEY", "sekret")
    inf = Inference(stub_settings(backend="openai", url=server, remote_model="qwen", api_key_env="TEAM_KEY"))
    await inf.start()
    try:
        toks = []
        a = await inf.ask("explain", [Snippet("a.py", 1, 2, "x")], max_tokens=4, on_token=toks.append)
        assert a.text == "Hello from the server" and toks == ["Hello", " from", " the", " server"]
        f = await inf.complete("def f(", ")", max_tokens=2)
        assert f.text == "Hello from"
        paths = [p for p, _, _ in StandIn.seen]
        assert "/v1/chat/completions" in paths and "/v1/completions" in paths
        fim_body = next(b for p, b, _ in StandIn.seen if p == "/v1/completions")
        assert "<|fim_prefix|>def f(<|fim_suffix|>)<|fim_middle|>" in fim_body["prompt"]
        assert fim_body["model"] == "qwen"
        assert all(auth == "Bearer sekret" for _, _, auth in StandIn.seen)
    finally:
        await inf.close()


async def test_unreachable_server_is_a_clear_error():
    inf = Inference(stub_settings(backend="openai", url="http://127.0.0.1:9"))
    await inf.start()
    try:
        with pytest.raises(InferenceError, match="unreachable"):
            await inf.ask("explain", max_tokens=2)
    finally:
        await inf.close()
