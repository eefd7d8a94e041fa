"""Retrieval benchmark: engram-ls against BM25 (bm25s) on the same chunks, in the same run.

Corpus: real third-party Python packages installed beside engram-ls (site-packages). Two tasks:
- NL -> code: the first sentence of a function's docstring is the query; the corpus is a copy of the code with every
  docstring blanked (line numbers kept), so the answer cannot be found by its own docstring.
- code -> code: a perturbed copy of a function (locals renamed, some statements dropped) is the query; the original
  function is the answer.
A hit is a retrieved chunk of the right file that contains the function's ``def`` line.

Also: index build time against bm25s, query latency (p50/p95) on a ~50k-chunk corpus, store size against the raw
source, peak RSS, and the cost of a one-character edit in a 3,000-line file against re-encoding that file.

Run: ``python bench/retrieval_bench.py`` (needs the ``bench`` extra: bm25s). Writes bench/results/retrieval.{json,md}.
"""

from __future__ import annotations

import ast
import json
import random
import re
import resource
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from engram_ls.retrieval import Engram
from engram_ls.retrieval.features import STOPWORDS, split_identifier

SITE = Path(sysconfig.get_paths()["purelib"])
QUALITY_PACKAGES = ["hypothesis", "pygls", "jinja2", "pathspec", "platformdirs", "attr", "cattrs", "bm25s",
                    "lsprotocol"]
SCALE_PACKAGES = ["numpy", "numba", "pip", "setuptools", "hypothesis", "jinja2", "llvmlite"]
N_QUERIES = 400
SEED = 7
OUT = Path(__file__).parent / "results"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- corpus ---------------------------------------------------------------------------------------------------------
def copy_packages(packages: list[str], dest: Path, blank_docstrings: bool) -> list[dict]:
    """Copies the packages' .py files; returns the functions with docstrings (path, def line, end, docstring)."""
    functions = []
    for package in packages:
        src = SITE / package
        if not src.exists():
            continue
        for f in sorted(src.rglob("*.py")):
            rel = f.relative_to(SITE).as_posix()
            text = f.read_text(encoding="utf-8", errors="replace")
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError):
                continue
            lines = text.split("\n")
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                    doc = ast.get_docstring(node)
                    first = node.body[0]
                    has_doc = doc and isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None),
                                                                                 ast.Constant)
                    functions.append({"path": rel, "line": node.lineno, "end": node.end_lineno,
                                      "doc": doc if has_doc else None, "name": node.name,
                                      "source": "\n".join(lines[node.lineno - 1:node.end_lineno])})
                    if has_doc and blank_docstrings:
                        for n in range(first.lineno - 1, first.end_lineno):
                            lines[n] = ""
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines), encoding="utf-8")
    return functions


def first_sentence(doc: str) -> str:
    text = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return (m.group(1) if m else text).strip()


def perturb(source: str, rng: random.Random) -> str | None:
    """Renames locals and arguments, drops ~25% of body lines (never the def line)."""
    try:
        tree = ast.parse(source.strip("\n") if not source.startswith((" ", "\t")) else "if 1:\n" + source)
    except SyntaxError:
        return None
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    names -= {"self", "cls"}
    mapping = {n: f"v{i}" for i, n in enumerate(sorted(names))}
    out = source
    for old, new in mapping.items():
        out = re.sub(rf"\b{re.escape(old)}\b", new, out)
    lines = out.split("\n")
    body = list(range(1, len(lines)))
    drop = set(rng.sample(body, k=len(body) // 4)) if len(body) >= 4 else set()
    return "\n".join(l for i, l in enumerate(lines) if i not in drop)


# -- BM25 -----------------------------------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


def code_tokens(text: str) -> list[str]:
    """A code-aware tokenizer for BM25: identifiers and their sub-tokens, lower-cased, without stop words."""
    out = []
    for m in _WORD.finditer(text):
        word = m.group(0)
        low = word.lower()
        subs = split_identifier(word)
        if low not in STOPWORDS:
            out.append(low)
        out.extend(s for s in subs if s != low and s not in STOPWORDS)
    return out


class BM25:
    def __init__(self, chunks: list[tuple[str, int, int]], texts: list[str]):
        import bm25s

        self.chunks = chunks
        started = time.perf_counter()
        tokens = [code_tokens(t) for t in texts]
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)
        self.build_seconds = time.perf_counter() - started

    def search(self, query: str, k: int) -> list[tuple[str, int, int]]:
        tokens = code_tokens(query)
        if not tokens:
            return []
        docs, scores = self.retriever.retrieve([tokens], k=k, show_progress=False)
        return [self.chunks[int(i)] for i, s in zip(docs[0], scores[0]) if s > 0]


# -- metrics --------------------------------------------------------------------------------------------------------
def rank_of(results: list[tuple[str, int, int]], target: dict) -> int | None:
    for rank, (path, start, end) in enumerate(results, 1):
        if path == target["path"] and start <= target["line"] <= end:
            return rank
    return None


def metrics(ranks: list[int | None]) -> dict:
    n = len(ranks)
    return {"mrr@10": round(sum(1 / r for r in ranks if r and r <= 10) / n, 4),
            "recall@1": round(sum(1 for r in ranks if r == 1) / n, 4),
            "recall@10": round(sum(1 for r in ranks if r and r <= 10) / n, 4), "n": n}


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


# -- runs -----------------------------------------------------------------------------------------------------------
def quality(work: Path) -> dict:
    corpus = work / "quality"
    functions = copy_packages(QUALITY_PACKAGES, corpus, blank_docstrings=True)
    raw_bytes = sum(f.stat().st_size for f in corpus.rglob("*.py"))
    cache = work / "cache-q"
    started = time.perf_counter()
    engram = Engram.open(corpus, cache_dir=cache)
    summary = engram.index_workspace()
    engram.save()
    engram_build = time.perf_counter() - started
    store_bytes = engram.store_path.stat().st_size
    chunks, texts = [], []
    for path in engram.documents():
        lines = engram.document_text(path).replace("\r\n", "\n").split("\n")
        for c in engram.chunks(path):
            chunks.append((path, c.start_line, c.end_line))
            texts.append("\n".join(lines[c.start_line - 1:c.end_line]))
    bm25 = BM25(chunks, texts)
    rng = random.Random(SEED)
    with_doc = [f for f in functions if f["doc"] and len(first_sentence(f["doc"]).split()) >= 4]
    nl = rng.sample(with_doc, min(N_QUERIES, len(with_doc)))
    code_pool = [f for f in functions if 6 <= f["end"] - f["line"] + 1 <= 60]
    code = rng.sample(code_pool, min(N_QUERIES, len(code_pool)))
    out = {"corpus": {"packages": QUALITY_PACKAGES, "files": summary.files, "chunks": summary.chunks,
                      "source_bytes": raw_bytes},
           "build_seconds": {"engram": round(engram_build, 3), "bm25s": round(bm25.build_seconds, 3)},
           "store_bytes": store_bytes, "store_to_source": round(store_bytes / raw_bytes, 3)}
    for task, items, make_query in (("nl_to_code", nl, lambda f: first_sentence(f["doc"])),
                                    ("code_to_code", code, lambda f: perturb(f["source"], rng))):
        e_ranks, b_ranks = [], []
        for f in items:
            q = make_query(f)
            if not q:
                continue
            e_ranks.append(rank_of([(h.path, h.start_line, h.end_line) for h in engram.search(q, 10)], f))
            b_ranks.append(rank_of(bm25.search(q, 10), f))
        e, b = metrics(e_ranks), metrics(b_ranks)
        out[task] = {"engram": e, "bm25": b,
                     "mrr_ratio": round(e["mrr@10"] / b["mrr@10"], 3) if b["mrr@10"] else None}
    return out


def scale(work: Path) -> dict:
    corpus = work / "scale"
    copy_packages(SCALE_PACKAGES, corpus, blank_docstrings=False)
    engram = Engram.open(corpus, cache_dir=work / "cache-s")
    started = time.perf_counter()
    summary = engram.index_workspace()
    build = time.perf_counter() - started
    rng = random.Random(SEED)
    words = ["parse", "array", "install", "package", "compile", "type", "error", "config", "read file",
             "dtype conversion", "shape broadcast", "wheel metadata", "ir builder", "requirement marker"]
    queries = [" ".join(rng.sample(words, 2)) for _ in range(200)]
    engram.search("warm up", 10)
    times = []
    for q in queries:
        t = time.perf_counter()
        engram.search(q, 10)
        times.append((time.perf_counter() - t) * 1000)
    return {"files": summary.files, "chunks": summary.chunks, "build_seconds": round(build, 2),
            "query_ms_p50": round(percentile(times, 50), 2), "query_ms_p95": round(percentile(times, 95), 2)}


def keystroke(work: Path) -> dict:
    root = work / "edit"
    root.mkdir()
    body = "\n\n".join(f"def function_{i}(value, other):\n    total = value + other * {i}\n"
                       f"    if total > {i}:\n        return total - {i}\n    return helper_{i % 7}(total)"
                       for i in range(500))
    text = body + "\n"
    assert len(text.split("\n")) >= 3000
    (root / "big.py").write_text(text)
    engram = Engram.open(root, cache_dir=work / "cache-e")
    engram.index_workspace()
    engram.set_document("big.py", text)
    line = 1500
    edit_ms = []
    for i in range(200):
        t = time.perf_counter()
        engram.apply_edit("big.py", (line, 4), (line, 4), "x" if i % 2 == 0 else "")
        edit_ms.append((time.perf_counter() - t) * 1000)
        if i % 2 == 0:
            engram.apply_edit("big.py", (line, 4), (line, 5), "")
    full_ms = []
    for _ in range(10):
        fresh = Engram.open(root, cache_dir=work / "cache-f")
        t = time.perf_counter()
        fresh.set_document("big.py", text)
        full_ms.append((time.perf_counter() - t) * 1000)
    p50 = percentile(edit_ms, 50)
    return {"file_lines": len(text.split("\n")), "edit_ms_p50": round(p50, 3),
            "edit_ms_p95": round(percentile(edit_ms, 95), 3),
            "full_reencode_ms_p50": round(percentile(full_ms, 50), 2),
            "speedup": round(percentile(full_ms, 50) / p50, 1)}


def markdown(r: dict) -> str:
    q = r["quality"]
    rows = ["| metric | engram-ls | BM25 (bm25s) | ratio | target | met |", "|---|---|---|---|---|---|"]
    for task, target in (("nl_to_code", 1.3), ("code_to_code", 1.0)):
        e, b = q[task]["engram"], q[task]["bm25"]
        ratio = q[task]["mrr_ratio"]
        rows.append(f"| {task} MRR@10 (n={e['n']}) | {e['mrr@10']:.3f} | {b['mrr@10']:.3f} | {ratio}× | "
                    f">= {target}× | {'yes' if ratio and ratio >= target else 'no'} |")
        rows.append(f"| {task} Recall@1 | {e['recall@1']:.3f} | {b['recall@1']:.3f} | | | |")
        rows.append(f"| {task} Recall@10 | {e['recall@10']:.3f} | {b['recall@10']:.3f} | | | |")
    bs = q["build_seconds"]
    build_ratio = bs["engram"] / bs["bm25s"]
    rows.append(f"| index build, {q['corpus']['chunks']} chunks (s) | {bs['engram']} | {bs['bm25s']} | "
                f"{build_ratio:.1f}× | <= 2× | {'yes' if build_ratio <= 2 else 'no'} |")
    rows.append(f"| store size / raw source | {q['store_to_source']} | | | <= 2 | "
                f"{'yes' if q['store_to_source'] <= 2 else 'no'} |")
    s = r["scale"]
    rows.append(f"| query p50 / p95, {s['chunks']} chunks (ms) | {s['query_ms_p50']} / {s['query_ms_p95']} | | | "
                f"<= 5 / <= 20 | {'yes' if s['query_ms_p50'] <= 5 and s['query_ms_p95'] <= 20 else 'no'} |")
    k = r["keystroke"]
    rows.append(f"| one-char edit, {k['file_lines']}-line file, p50 (ms) | {k['edit_ms_p50']} | "
                f"full re-encode {k['full_reencode_ms_p50']} | {k['speedup']}× cheaper | <= 1 ms, >= 50× | "
                f"{'yes' if k['edit_ms_p50'] <= 1 and k['speedup'] >= 50 else 'no'} |")
    rows.append(f"| peak RSS (MB) | {r['peak_rss_mb']} | | | | |")
    return "\n".join(rows)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="engram-bench-"))
    try:
        result = {"quality": quality(work)}
        result["keystroke"] = keystroke(work)
        result["scale"] = scale(work)
        result["peak_rss_mb"] = round(rss_mb(), 1)
        result["python"] = sys.version.split()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "retrieval.json").write_text(json.dumps(result, indent=2))
    table = markdown(result)
    (OUT / "retrieval.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
