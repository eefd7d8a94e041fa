"""The VS Code extension: build, lint, unit tests, the protocol test against the real server, and the .vsix.

Each step is the extension's own npm script, run as a subprocess so that it shows up in the one pytest run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[2] / "clients" / "vscode"
pytestmark = pytest.mark.editor


def npm(*args, timeout=600, env=None):
    npm_bin = shutil.which("npm")
    assert npm_bin, "npm is required for the VS Code extension's tests (Node 20 with npm)"
    proc = subprocess.run([npm_bin, *args], cwd=EXT, capture_output=True, text=True, timeout=timeout,
                          env=env or os.environ)
    assert proc.returncode == 0, f"npm {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def built():
    if not (EXT / "node_modules" / ".package-lock.json").exists():
        npm("ci", "--no-audit", "--no-fund")
    npm("run", "compile")
    return EXT


def test_lint(built):
    npm("run", "lint")


def test_unit_tests(built):
    out = npm("test")
    assert "# fail 0" in out and "# pass" in out


def test_protocol_against_the_real_server(built):
    exe = Path(sys.executable).parent / "engram-ls"
    out = npm("run", "test:protocol", env=dict(os.environ, ENGRAM_LS=str(exe)))
    assert "# fail 0" in out and "# pass 5" in out


def test_vsix_packages(built):
    vsix = EXT / "engram-ls.vsix"
    vsix.unlink(missing_ok=True)
    npm("run", "package")
    assert vsix.exists() and vsix.stat().st_size > 10_000
    listing = subprocess.run(["python3", "-m", "zipfile", "-l", str(vsix)], capture_output=True, text=True).stdout
    assert "extension/out/src/extension.js" in listing and "extension/package.json" in listing
