"""`engram-ls ask`: retrieval + routing + a real worker, end to end through the console script."""

import json
import os
import subprocess
import sys

import pytest

from tests.retrieval.conftest import make_workspace

EXE = [sys.executable, "-m", "engram_ls.server.cli"]


def ask(ws, cache, *extra):
    env = dict(os.environ, ENGRAM_LS_CACHE=str(cache))
    return subprocess.run([*EXE, "ask", str(ws), *extra], capture_output=True, text=True, env=env, timeout=600)


def test_ask_streams_and_cites_with_the_stub_backend(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    proc = ask(ws, tmp_path / "c", "How do we download a web page?", "--backend", "stub", "--max-tokens", "5")
    assert proc.returncode == 0, proc.stderr
    answer, _, sources = proc.stdout.partition("Sources:")
    assert answer.strip().startswith("stub_")
    assert any(l.strip().startswith("net/http_client.py:4-") for l in sources.splitlines())


def test_ask_json(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    proc = ask(ws, tmp_path / "c", "explain the discount", "--backend", "stub", "--max-tokens", "3", "--json")
    out = json.loads(proc.stdout)
    assert out["role"] == "research" and out["model"] == "stub"
    assert any(c["path"] == "shop/pricing.py" for c in out["citations"])


def test_ask_errors_are_one_line(tmp_path):
    proc = ask(tmp_path / "missing", tmp_path / "c", "q")
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    ws = make_workspace(tmp_path / "ws")
    proc = ask(ws, tmp_path / "c", "q", "--model-path", str(tmp_path / "none.gguf"))
    assert proc.returncode == 1 and "none.gguf" in proc.stderr


@pytest.mark.model
def test_ask_with_the_shipped_model(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    proc = ask(ws, tmp_path / "c", "What does apply_discount do?", "--max-tokens", "40", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"].strip() and "Qwen" in out["model"]
    assert {"shop/pricing.py", "shop/cart.py"} & {c["path"] for c in out["citations"]}
