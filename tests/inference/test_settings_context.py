"""A context length llama.cpp would pad is refused with a clear message, not a ValueError in every completion."""

import json
import os
import subprocess
import sys

from engram_ls.inference import InferenceSettings, ModelSettings


def test_a_context_length_off_the_256_grid_is_a_settings_problem():
    problems = InferenceSettings(coding=ModelSettings(context_length=384)).validate()
    assert problems == ["coding.context_length: must be a multiple of 256 (got 384)"]
    assert InferenceSettings(coding=ModelSettings(context_length=512),
                             research=ModelSettings(context_length=768)).validate() == []


def test_complete_refuses_it_before_any_model_starts(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.py").write_text("x = 1\n")
    req = tmp_path / "r.jsonl"
    req.write_text(json.dumps({"id": 1, "path": "a.py", "prefix": "x = ", "suffix": "\n"}) + "\n")
    proc = subprocess.run([sys.executable, "-m", "engram_ls.server.cli", "complete", str(ws), "--requests-file",
                           str(req), "--context-length", "384", "--json"], capture_output=True, text=True,
                          env=dict(os.environ, ENGRAM_LS_CACHE=str(tmp_path / "cache")), timeout=300)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "context_length: must be a multiple of 256 (got 384)" in proc.stderr
