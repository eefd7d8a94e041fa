"""Fuzz the language server's message handling with hypothesis, over a raw stdio pipe.

Each example is one JSON-RPC message: a known or random method, with params drawn from JSON values shaped like LSP
params (positions with huge or negative numbers, wrong types, missing fields, unicode, deep nesting). After every
message the server must still answer a request. A crash, a hang (no answer in 30 s) or a request without a reply
is a finding. Run: ``python bench/fuzz_lsp.py [--seconds 180]``; writes bench/results/fuzz.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.retrieval.conftest import make_workspace  # noqa: E402
from tests.server.test_protocol_errors import RawClient  # noqa: E402

OUT = Path(__file__).parent / "results"
METHODS = ["textDocument/hover", "textDocument/completion", "textDocument/inlineCompletion",
           "textDocument/codeAction", "codeAction/resolve", "workspace/executeCommand", "engram/search",
           "textDocument/didOpen", "textDocument/didChange", "textDocument/didClose", "textDocument/didSave",
           "workspace/didChangeConfiguration", "workspace/didChangeWatchedFiles", "$/cancelRequest",
           "workspace/didChangeWorkspaceFolders", "textDocument/definition", "bogus/method"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                    st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=20)


def position():
    return st.fixed_dictionaries({"line": st.integers(-5, 10**6), "character": st.integers(-5, 10**6)})


def params_for(uri: str):
    doc = st.fixed_dictionaries({"uri": st.sampled_from([uri, "file:///nope.py", "not a uri", ""])})
    lsp_like = st.fixed_dictionaries({
        "textDocument": st.one_of(doc, json_values), "position": st.one_of(position(), json_values),
        "range": st.fixed_dictionaries({"start": position(), "end": position()}),
        "context": st.one_of(st.just({"diagnostics": [], "triggerKind": 1}), json_values),
        "contentChanges": st.lists(st.fixed_dictionaries({"text": st.text(max_size=30),
                                                          "range": st.fixed_dictionaries({"start": position(),
                                                                                          "end": position()})}),
                                   max_size=3),
        "command": st.sampled_from(["engram.search", "engram.status", "engram.explainSelection", "engram.nope"]),
        "arguments": st.lists(json_values, max_size=2),
    })
    return st.one_of(lsp_like, json_values)


class TimeUp(BaseException):
    """The time budget is spent (a BaseException, so hypothesis does not treat it as a failing example)."""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="engram-fuzz-"))
    ws = make_workspace(work / "ws")
    raw = RawClient(work / "cache")
    raw.root = ws
    raw.request(0, "initialize", {"processId": None, "rootUri": ws.as_uri(), "capabilities": {},
                                  "initializationOptions": {"backend": {"kind": "stub"}, "hover": {"useModel": False}}})
    raw.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    uri = (ws / "shop/cart.py").as_uri()
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": (ws / "shop/cart.py").read_text()}}})
    stats = {"examples": 0, "requests": 0, "errors_answered": 0, "findings": []}
    deadline = time.monotonic() + args.seconds
    counter = iter(range(1, 10**9))

    @settings(max_examples=10**6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(METHODS), params_for(uri), st.booleans())
    def one(method, params, is_request):
        if time.monotonic() > deadline:
            raise TimeUp()
        stats["examples"] += 1
        if is_request:
            msg_id = next(counter)
            raw.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
            try:
                reply = raw.response(msg_id, timeout=30)
            except Exception:
                stats["findings"].append({"method": method, "params": params, "problem": "no reply in 30 s"})
                raise
            stats["requests"] += 1
            stats["errors_answered"] += "error" in reply
        else:
            raw.send({"jsonrpc": "2.0", "method": method, "params": params})
        probe = next(counter)
        raw.send({"jsonrpc": "2.0", "id": probe, "method": "workspace/executeCommand",
                  "params": {"command": "engram.status", "arguments": []}})
        if "result" not in raw.response(probe, timeout=30):
            stats["findings"].append({"method": method, "params": params, "problem": "status failed afterwards"})
            raise AssertionError("server stopped answering")

    started = time.monotonic()
    try:
        one()
    except TimeUp:
        stats["stopped_by"] = "time budget"
    except Exception as e:  # a finding: recorded above
        stats["stopped_by"] = f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        stats["seconds"] = round(time.monotonic() - started, 1)
        stats["server_alive"] = raw.proc.poll() is None
        raw.close()
    OUT.mkdir(exist_ok=True)
    (OUT / "fuzz.json").write_text(json.dumps(stats, indent=2, default=str))
    print(json.dumps({k: v for k, v in stats.items() if k != "findings"}), f"findings={len(stats['findings'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
