"""The engram-ls CLI contract (index / search), run as a real console script."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.retrieval.conftest import make_workspace

EXE = [sys.executable, "-m", "engram_ls.server.cli"]


def run(*args, cache, check=True):
    env = dict(os.environ, ENGRAM_LS_CACHE=str(cache))
    proc = subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def ws(tmp_path):
    return make_workspace(tmp_path / "ws")


def test_index_prints_a_summary_and_reuses_the_store(ws, tmp_path):
    first = run("index", ws, "--quiet", cache=tmp_path / "c")
    assert "indexed 5 files" in first.stdout and "5 re-encoded" in first.stdout
    second = run("index", ws, "--quiet", cache=tmp_path / "c")
    assert "0 re-encoded" in second.stdout


def test_search_json_contract(ws, tmp_path):
    out = json.loads(run("search", ws, "download a web page", "-k", "2", "--json", cache=tmp_path / "c").stdout)
    assert len(out["results"]) == 2
    top = out["results"][0]
    assert set(top) == {"path", "start_line", "end_line", "score", "text"}
    assert top["path"] == "net/http_client.py" and top["start_line"] == 4
    lines = (ws / top["path"]).read_text().splitlines()
    assert top["text"] == "\n".join(lines[top["start_line"] - 1:top["end_line"]])


def test_search_table_and_query_file(ws, tmp_path):
    q = tmp_path / "q.py"
    q.write_text("def total(self):\n    return sum(p.price * q for p, q in self.items)\n")
    out = run("search", ws, "--query-file", q, cache=tmp_path / "c").stdout
    assert out.splitlines()[0].split()[1].startswith("shop/cart.py:")


def test_batch_queries(ws, tmp_path):
    snippet = tmp_path / "s.js"
    snippet.write_text("function slug(t) { return t.toLowerCase(); }")
    qf = tmp_path / "q.jsonl"
    qf.write_text(json.dumps({"id": "a", "query": "ten percent off large orders"}) + "\n" +
                  json.dumps({"id": 7, "query_file": str(snippet)}) + "\n")
    lines = run("search", ws, "--queries-file", qf, "-k", "1", "--json", cache=tmp_path / "c").stdout.splitlines()
    rows = [json.loads(l) for l in lines]
    assert [r["id"] for r in rows] == ["a", 7]
    assert rows[0]["results"][0]["path"] == "shop/pricing.py"
    assert rows[1]["results"][0]["path"] == "util/strings.js"


@pytest.mark.parametrize("args,needle", [
    (["search", "/no/such/dir", "x"], "no such path"),
    (["index", "/no/such/dir"], "no such path"),
    (["search", "{ws}", "--query-file", "/no/such/file"], "cannot read query file"),
    (["search", "{ws}", "--queries-file", "{bad}"], "bad query line"),
    (["search", "{ws}"], "exactly one of"),
])
def test_clear_errors_exit_2(ws, tmp_path, args, needle):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    args = [a.format(ws=ws, bad=bad) for a in args]
    proc = run(*args, cache=tmp_path / "c", check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_corrupt_store_is_reported_once_and_rebuilt(ws, tmp_path):
    run("index", ws, "--quiet", cache=tmp_path / "c")
    store = next((tmp_path / "c").rglob("engram.store"))
    store.write_bytes(store.read_bytes()[:40])
    proc = run("search", ws, "download a web page", "--json", cache=tmp_path / "c")
    assert proc.stderr.count("rebuilding") == 1
    assert json.loads(proc.stdout)["results"][0]["path"] == "net/http_client.py"


def test_version_and_console_script():
    exe = Path(sys.executable).parent / "engram-ls"
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("engram-ls ")
