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
    # "http" is in both functions of net/http_client.py (its path) and in the README: more than two chunks match
    out = json.loads(run("search", ws, "download a web page over HTTP", "-k", "2", "--json", cache=tmp_path / "c").stdout)
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
    (["ask", "/no/such/dir", "q"], "no such path"),
    (["index", "{file}"], "not a directory"),
    (["search", "{file}", "x"], "not a directory"),
    (["ask", "{file}", "q"], "not a directory"),
    (["ask", "{ws}", "  "], "the question is empty"),
    (["search", "{ws}", "  "], "the query is empty"),
    (["search", "{ws}", "x", "-k", "0"], "-k must be at least 1"),
    (["ask", "{ws}", "q", "-k", "0"], "-k must be at least 1"),
    (["ask", "{ws}", "q", "--max-tokens", "0"], "--max-tokens must be in 1..8192"),
    (["ask", "{ws}", "q", "--backend", "nope"], "must be one of llama, openai"),
    (["frobnicate"], "invalid choice"),
    (["search", "{ws}", "--query-file", "/no/such/file"], "cannot read query file"),
    (["search", "{ws}", "--queries-file", "{bad}"], "bad query line"),
    (["search", "{ws}", "--queries-file", "{latin1}"], "not UTF-8 text"),
    (["search", "{ws}"], "exactly one of"),
])
def test_clear_errors_exit_2(ws, tmp_path, args, needle):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"query": "café"}\n'.encode("latin-1"))
    args = [a.format(ws=ws, bad=bad, latin1=latin1, file=ws / "README.md") for a in args]
    proc = run(*args, cache=tmp_path / "c", check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("engram-ls: error: ")


def test_one_wording_per_cause_in_every_command(tmp_path):
    """The same cause gives the same sentence whichever command meets it."""
    missing, file = tmp_path / "gone", tmp_path / "f.txt"
    file.write_text("x")
    for path, sentence in ((missing, f"engram-ls: error: no such path: {missing}"),
                           (file, f"engram-ls: error: not a directory: {file}")):
        for cmd in (["index", path], ["search", path, "x"], ["ask", path, "q"]):
            proc = run(*cmd, cache=tmp_path / "c", check=False)
            assert proc.stderr.strip() == sentence and proc.returncode == 2, (cmd, proc.stderr)


def test_index_reports_skipped_files_by_reason(ws, tmp_path):
    (ws / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00" + bytes(range(256)))
    (ws / "data.min.js").write_text("var a=" + "1," * 600_000 + "1;")  # 1.2 MB on one line
    (ws / ".env").write_text("API_KEY=abc\n")
    (ws / "shop" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    out = run("index", ws, "--quiet", cache=tmp_path / "c").stdout
    assert "indexed 5 files" in out
    assert "skipped 4 files: 1 binary, 2 secret, 1 too large" in out, out
    assert "  secret: .env\n  secret: shop/id_rsa" in out  # secret files are named: they are never indexed
    again = run("index", ws, "--quiet", cache=tmp_path / "c").stdout
    assert "skipped 4 files: 1 binary, 2 secret, 1 too large" in again  # skipped every time, not only the first
    for name in ("logo.png", "data.min.js", ".env", "shop/id_rsa"):
        (ws / name).unlink()
    assert "\nskipped" not in run("index", ws, "--quiet", cache=tmp_path / "c").stdout


def help_of(*cmd):
    proc = subprocess.run([str(Path(sys.executable).parent / "engram-ls"), *cmd, "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_argument_has_help_with_its_default_and_test_backends_are_hidden():
    from engram_ls.server.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if action.dest == "help" or action.help == "==SUPPRESS==":
                continue
            assert action.help, (name, action.dest)
            if action.option_strings and not action.required:  # an option: its default is said (required ones and
                # positionals have none)
                assert "default" in action.help, (name, action.dest, action.help)
    text = help_of() + "".join(help_of(c) for c in ("index", "search", "ask", "serve"))
    assert "stub" not in text and "stub-delay" not in text
    assert "(default: 384)" in help_of("ask") and "the workspace folder" in help_of("index")


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
