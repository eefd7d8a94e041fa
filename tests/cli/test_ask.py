"""`engram-ls ask`: retrieval + routing + a real worker, end to end through the console script."""

import json
import os
import subprocess
import sys

import pytest

from tests.retrieval.conftest import make_workspace

EXE = [sys.executable, "-m", "engram_ls.server.cli"]


def ask(ws, cache, *extra, trace=None):
    env = dict(os.environ, ENGRAM_LS_CACHE=str(cache))
    if trace is not None:
        env["ENGRAM_LS_TRACE_FRAMES"] = str(trace)  # every frame sent to a model worker, one JSON line each
    return subprocess.run([*EXE, "ask", str(ws), *extra], capture_output=True, text=True, env=env, timeout=600)


def model_calls(trace) -> int:
    if not trace.exists():
        return 0
    return sum(json.loads(line)["type"] == "generate" for line in trace.read_text().splitlines())


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
    assert proc.returncode == 2 and proc.stderr.strip() == f"engram-ls: error: no such path: {tmp_path / 'missing'}"
    ws = make_workspace(tmp_path / "ws")
    proc = ask(ws, tmp_path / "c", "What does apply_discount do?", "--model-path", str(tmp_path / "none.gguf"))
    assert proc.returncode == 1 and "none.gguf" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_an_empty_folder_gets_no_model_call_and_a_clear_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    trace = tmp_path / "frames.jsonl"
    proc = ask(empty, tmp_path / "c", "What does print_message do?", trace=trace)  # the real (llama) backend
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("Nothing in the workspace matched the question, so the model was not asked. "
                                   "The workspace has no indexed files.")
    assert model_calls(trace) == 0 and not trace.exists()  # no worker was even started
    out = json.loads(ask(empty, tmp_path / "c", "What does print_message do?", "--json", trace=trace).stdout)
    assert out["grounded"] is False and out["model_calls"] == 0 and out["answer"] == "" and out["nearest"] == []


def test_weak_context_is_not_sent_to_the_model_but_the_nearest_hits_are_shown(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    trace = tmp_path / "frames.jsonl"
    proc = ask(ws, tmp_path / "c", "How does the feed parser retry multipart headers?", "--backend", "stub",
               trace=trace)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Nothing in the workspace matched the question, so the model was not asked.")
    assert "Nearest hits" in proc.stdout and "net/http_client.py:" in proc.stdout
    assert "stub_" not in proc.stdout and model_calls(trace) == 0
    grounded = ask(ws, tmp_path / "c", "How does retry_request retry?", "--backend", "stub", "--max-tokens", "3",
                   trace=trace)
    assert grounded.stdout.startswith("stub_") and model_calls(trace) == 1  # the same path asks when it matches


@pytest.mark.model
def test_ask_with_the_shipped_model(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    proc = ask(ws, tmp_path / "c", "What does apply_discount do?", "--max-tokens", "40", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"].strip() and "Qwen" in out["model"]
    assert {"shop/pricing.py", "shop/cart.py"} & {c["path"] for c in out["citations"]}


@pytest.mark.model
def test_an_answer_the_limit_cuts_ends_at_a_boundary_and_says_so(tmp_path):
    """The shipped model, streamed to the terminal: 16 tokens cut its one-sentence explanation, and what was shown
    ends with a whole word and an ellipsis (or a whole sentence), then the notice: the half-written part was held
    back, never printed."""
    ws = make_workspace(tmp_path / "ws")
    proc = ask(ws, tmp_path / "c", "How is the discount applied at checkout?", "--max-tokens", "16")
    assert proc.returncode == 0, proc.stderr
    answer, notice, _ = proc.stdout.partition("\n(cut at 16 tokens)\n")
    assert notice, proc.stdout
    assert answer.rstrip()[-1] in ".!?)`*…", answer
