"""`engram-ls complete`: batch completions through the inline completion's context, prompt builder and workers."""

import json
import os
import subprocess
import sys

from tests.retrieval.conftest import make_workspace

EXE = [sys.executable, "-m", "engram_ls.server.cli"]

FILES = {
    "billing/invoices.py": '''
        """Invoices."""


        def compute_invoice_total(lines, tax_rate, *, discount=0.0):
            """The total of an invoice's lines, with tax, less the discount."""
            subtotal = sum(line.amount for line in lines)
            return round(subtotal * (1 + tax_rate) - discount, 2)
    ''',
    "billing/report.py": '''
        from .invoices import compute_invoice_total


        def yearly(invoices):
            return [compute_invoice_total(i.lines, 0.2, discount=i.discount) for i in invoices]
    ''',
    "shop/checkout.py": '''
        from billing.invoices import compute_invoice_total


        def checkout(cart):
            saved_only_marker = compute_invoice_total(cart.lines, 0.1)
            return saved_only_marker
    ''',
}
CURSOR = "from billing.invoices import compute_invoice_total\n\n\ndef checkout(cart):\n    total = "


def complete(ws, cache, requests, *extra, trace=None, raw=None):
    req = cache.parent / "requests.jsonl"
    req.write_text(raw if raw is not None else "".join(json.dumps(r) + "\n" for r in requests))
    env = dict(os.environ, ENGRAM_LS_CACHE=str(cache))
    if trace is not None:
        env["ENGRAM_LS_TRACE_FRAMES"] = str(trace)
    return subprocess.run([*EXE, "complete", str(ws), "--requests-file", str(req), *extra], capture_output=True,
                          text=True, env=env, timeout=900)


def lines_of(proc):
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def generated(trace):
    return [json.loads(l) for l in trace.read_text().splitlines() if json.loads(l)["type"] == "generate"] \
        if trace.exists() else []


def test_one_json_line_per_request_with_the_definition_as_context(tmp_path):
    ws = make_workspace(tmp_path / "ws", FILES)
    trace = tmp_path / "frames.jsonl"
    out = lines_of(complete(ws, tmp_path / "c", [
        {"id": "a", "path": "shop/checkout.py", "prefix": CURSOR, "suffix": "\n    return total\n"},
        {"id": 7, "path": "shop/new_file.py", "prefix": "from billing.invoices import compute_invoice_total\n"
         "x = ", "suffix": ""}], "--backend", "stub", "--max-tokens", "3", "--json", trace=trace))
    assert [o["id"] for o in out] == ["a", 7]
    for o in out:
        assert set(o) == {"id", "completion", "citations"} and o["completion"].startswith("stub_")
        assert {"path": "billing/invoices.py", "start_line": 4, "end_line": 7} in o["citations"]
    frames = generated(trace)
    assert [f["prefix"] for f in frames] == [CURSOR, "from billing.invoices import compute_invoice_total\nx = "]
    definition = next(s for s in frames[0]["snippets"] if s["path"] == "billing/invoices.py")
    assert definition["text"].startswith("def compute_invoice_total(lines, tax_rate, *, discount=0.0):")
    assert any(s["path"] == "billing/report.py" and "compute_invoice_total(i.lines" in s["text"]
               for s in frames[0]["snippets"])  # a call site teaches the arguments


def test_the_saved_file_is_never_its_own_context_but_other_requests_see_it(tmp_path):
    """A request's own document is never a source (its saved lines could hold the answer); for the next request
    in another file it is."""
    ws = make_workspace(tmp_path / "ws", FILES)
    trace = tmp_path / "frames.jsonl"
    out = lines_of(complete(ws, tmp_path / "c", [
        {"id": 1, "path": "billing/invoices.py", "prefix": '"""Invoices, rewritten."""\n', "suffix": ""},
        {"id": 2, "path": "shop/checkout.py", "prefix": CURSOR, "suffix": "\n"}], "--backend", "stub",
        "--max-tokens", "2", trace=trace))
    frames = generated(trace)
    assert all(s["path"] != "billing/invoices.py" for s in frames[0]["snippets"])
    assert all("saved_only_marker" not in s["text"] for f in frames for s in f["snippets"])
    assert {"path": "billing/invoices.py", "start_line": 4, "end_line": 7} in out[1]["citations"]


def test_no_context_and_given_context(tmp_path):
    ws = make_workspace(tmp_path / "ws", FILES)
    trace = tmp_path / "frames.jsonl"
    request = {"id": 1, "path": "shop/checkout.py", "prefix": CURSOR, "suffix": "\n",
               "snippets": [{"path": "notes/oracle.py", "start_line": 3, "end_line": 4, "text": "def f(): pass"}]}
    none, = lines_of(complete(ws, tmp_path / "c", [request], "--backend", "stub", "--max-tokens", "2",
                              "--context", "none", trace=trace))
    given, = lines_of(complete(ws, tmp_path / "c", [request], "--backend", "stub", "--max-tokens", "2",
                               "--context", "given", trace=trace))
    assert none["citations"] == [] and generated(trace)[0]["snippets"] == []
    assert given["citations"] == [{"path": "notes/oracle.py", "start_line": 3, "end_line": 4}]


def test_a_secret_file_never_reaches_a_model(tmp_path):
    ws = make_workspace(tmp_path / "ws", FILES)
    trace = tmp_path / "frames.jsonl"
    out, = lines_of(complete(ws, tmp_path / "c", [{"id": 1, "path": ".env", "prefix": "API_KEY=", "suffix": ""}],
                             "--backend", "stub", trace=trace))
    assert out == {"id": 1, "completion": "", "citations": []} and generated(trace) == []


def test_bad_requests_are_one_line_errors_with_exit_2_before_any_model_starts(tmp_path):
    ws = make_workspace(tmp_path / "ws", FILES)
    good = json.dumps({"id": 1, "path": "shop/checkout.py", "prefix": "x", "suffix": ""})
    req = tmp_path / "requests.jsonl"
    cases = {
        "{not json": "bad request line (Expecting property name",
        "[1, 2]": "bad request line (a line must be a JSON object)",
        json.dumps({"id": 1, "path": "a.py", "prefix": "x"}): "bad request line (missing 'suffix')",
        json.dumps({"id": 1, "path": "a.py", "prefix": 3, "suffix": ""}): "bad request line ('prefix' must be a string)",
        json.dumps({"id": True, "path": "a.py", "prefix": "", "suffix": ""}): "'id' must be a string or integer",
        json.dumps({"id": 1, "path": "/etc/passwd", "prefix": "", "suffix": ""}): "'path' must be relative",
        json.dumps({"id": 1, "path": "../x.py", "prefix": "", "suffix": ""}): "'path' must be relative",
        json.dumps({"id": 1, "path": "a.py", "prefix": "", "suffix": "", "snippets": [{"path": "b.py"}]}):
            "each snippet needs 'path', 'start_line', 'end_line' and 'text'",
    }
    trace = tmp_path / "frames.jsonl"
    for bad, message in cases.items():
        proc = complete(ws, tmp_path / "c", None, "--backend", "stub", raw=f"{good}\n\n{bad}\n", trace=trace)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert proc.stderr.startswith(f"engram-ls: error: {req}:3: ") and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
    assert generated(trace) == []  # the good first line was never run: the file is checked first
    missing = complete(ws, tmp_path / "c", [])
    missing = subprocess.run([*EXE, "complete", str(ws), "--requests-file", str(tmp_path / "none.jsonl")],
                             capture_output=True, text=True, env=dict(os.environ, ENGRAM_LS_CACHE=str(tmp_path)))
    assert missing.returncode == 2 and missing.stderr.strip() == (
        f"engram-ls: error: cannot read requests file {tmp_path / 'none.jsonl'}: No such file or directory")
    nowhere = complete(tmp_path / "nowhere", tmp_path / "c", [])
    assert nowhere.returncode == 2 and nowhere.stderr.strip() == f"engram-ls: error: no such path: {tmp_path / 'nowhere'}"
    usage = subprocess.run([*EXE, "complete", str(ws)], capture_output=True, text=True)
    assert usage.returncode == 2 and "--requests-file" in usage.stderr and len(usage.stderr.strip().splitlines()) == 1


def test_a_missing_model_is_exit_1(tmp_path):
    ws = make_workspace(tmp_path / "ws", FILES)
    proc = complete(ws, tmp_path / "c", [{"id": 1, "path": "shop/checkout.py", "prefix": CURSOR, "suffix": ""}],
                    "--model-path", str(tmp_path / "none.gguf"))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("engram-ls: error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "none.gguf" in errors[0] and proc.stdout == ""


def test_completions_use_the_larger_model_only_where_the_cores_allow():
    from engram_ls.inference import models

    assert models.completion_model(2) == models.DEFAULT_MODEL  # this machine's class: the 0.5B
    big = models.completion_model(8)
    installed = models.LARGE_CODER in models.available()
    assert big == (models.LARGE_CODER if installed else models.DEFAULT_MODEL)


def test_the_shipped_model_completes_with_the_cross_file_definition(tmp_path):
    """The real 0.5B model, one line: the definition from another file is in its prompt and it writes the call."""
    ws = make_workspace(tmp_path / "ws", FILES)
    out, = lines_of(complete(ws, tmp_path / "c", [
        {"id": "real", "path": "shop/checkout.py", "prefix": CURSOR, "suffix": "\n    return total\n"}],
        "--one-line", "--max-tokens", "24", "--context-length", "1024", "--json"))
    assert {"path": "billing/invoices.py", "start_line": 4, "end_line": 7} in out["citations"]
    assert "\n" not in out["completion"] and "compute_invoice_total(" in out["completion"], out
