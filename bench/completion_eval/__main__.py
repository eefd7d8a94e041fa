"""Does engram context make completions better? CrossCodeEval-style next-line completion, four arms.

Targets (``targets.py``): first uses of a name defined in another file of the project, in recent pure-Python
packages released after the shipped models' training data (PROJECTS; pure wheels hold the same .py files as the
sdists). Every arm runs through ``engram-ls complete`` — the inline completion's own context, prompt builder and
workers — with the same context length (so the same token budget for snippets), greedy, one line:

- ``none``: the file's prefix and suffix only;
- ``engram``: ``--context engram`` (definitions and call sites of the names near the cursor, then similar code);
- ``bm25``: ``--context given`` with the best 24-line windows of the other files by BM25 (bm25s), queried with the
  15 lines before the cursor;
- ``oracle``: ``--context given`` with the defining span itself (its first 20 lines): the ceiling.

Metrics: exact match of the line, edit similarity, identifier match (the line's identifiers, in order), the needed
name present; paired bootstrap 95% CI of the engram/none exact-match ratio; retrieval hit rate (a cited snippet
holds the definition's first line). Targets run in chunks, all four arms per chunk, so a run cut short is still
paired. Results: bench/results/completion_eval[-TAG].{json,md}.

Run: ``nice -n 10 python -m bench.completion_eval --prepare --n 200`` (``--prepare`` pip-downloads the projects
into --work; later runs reuse them).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from .targets import project_targets

PROJECTS = {"a2a-sdk": "1.3.0", "any-llm-sdk": "1.40.2", "openai-agents": "0.24.0", "pydocket": "0.27.2",
            "smolagents": "1.26.0", "strands-agents": "1.62.0"}
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
ARMS = ("none", "engram", "bm25", "oracle")
SEED = 13
CHUNK = 6
WINDOW, STRIDE, QUERY_LINES, BM25_K = 24, 12, 15, 8
ORACLE_LINES = 20
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def prepare(work: Path) -> None:
    """pip-downloads each project's pure wheel (no dependencies) and unpacks its .py files."""
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for name, version in PROJECTS.items():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
                        f"{name}=={version}", "-d", str(wheels)], check=True)
    for wheel in sorted(wheels.glob("*.whl")):
        dest = work / "projects" / wheel.name.split("-")[0]
        with zipfile.ZipFile(wheel) as z:
            z.extractall(dest, [m for m in z.namelist() if ".dist-info/" not in m])


def choose(work: Path, n: int) -> list[dict]:
    """``n`` targets spread evenly over the projects (a small project's shortfall goes to the others)."""
    rng = random.Random(SEED)
    pools = {}
    for name in PROJECTS:
        folder = work / "projects" / name.replace("-", "_")
        pools[folder.name] = [{**t, "project": folder.name} for t in project_targets(folder, rng, 10 * n)]
    chosen: list[dict] = []
    while len(chosen) < n and any(pools.values()):
        for pool in pools.values():
            if pool and len(chosen) < n:
                chosen.append(pool.pop(0))
    for i, t in enumerate(chosen):
        t["id"] = i
    return chosen


class Windows:
    """BM25 over fixed windows of a project's Python files (the classic repo-level retrieval baseline)."""

    def __init__(self, folder: Path):
        import bm25s

        self.spans, texts = [], []
        for f in sorted(folder.rglob("*.py")):
            lines = f.read_text(encoding="utf-8", errors="replace").split("\n")
            rel = f.relative_to(folder).as_posix()
            for start in range(0, max(1, len(lines) - STRIDE), STRIDE):
                body = "\n".join(lines[start:start + WINDOW])
                if body.strip():
                    self.spans.append((rel, start + 1, min(len(lines), start + WINDOW), body))
                    texts.append(body)
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(texts, stopwords=None, show_progress=False), show_progress=False)

    def snippets(self, path: str, prefix: str) -> list[dict]:
        import bm25s

        query = "\n".join(prefix.split("\n")[-QUERY_LINES:])
        ids, _ = self.retriever.retrieve(bm25s.tokenize([query], stopwords=None, show_progress=False),
                                         k=min(len(self.spans), BM25_K + 8), show_progress=False)
        out = []
        for i in ids[0]:
            rel, start, end, text = self.spans[int(i)]
            if rel != path and len(out) < BM25_K:
                out.append({"path": rel, "start_line": start, "end_line": end, "text": text})
        return out


def oracle(folder: Path, target: dict) -> list[dict]:
    span = target["defined"][0]
    lines = (folder / span["path"]).read_text(encoding="utf-8", errors="replace").split("\n")
    end = min(span["end_line"], span["start_line"] + ORACLE_LINES - 1)
    return [{"path": span["path"], "start_line": span["start_line"], "end_line": end,
             "text": "\n".join(lines[span["start_line"] - 1:end])}]


def run_arm(arm: str, folder: Path, items: list[dict], args, cache: Path, windows: dict) -> list[dict]:
    requests = []
    for t in items:
        r = {"id": t["id"], "path": t["path"], "prefix": t["prefix"], "suffix": t["suffix"]}
        if arm == "bm25":
            r["snippets"] = windows[folder.name].snippets(t["path"], t["prefix"])
        elif arm == "oracle":
            r["snippets"] = oracle(folder, t)
        requests.append(r)
    req_file = cache / f"requests-{arm}.jsonl"
    req_file.write_text("".join(json.dumps(r) + "\n" for r in requests))
    context = {"none": "none", "engram": "engram"}.get(arm, "given")
    cmd = [sys.executable, "-m", "engram_ls.server.cli", "complete", str(folder), "--requests-file", str(req_file),
           "--context", context, "--one-line", "--max-tokens", str(args.max_tokens), "--context-length",
           str(args.context_length), "--json"]
    if args.model:
        cmd += ["--model-path", args.model]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, ENGRAM_LS_CACHE=str(cache)))
    if proc.returncode != 0:
        raise SystemExit(f"engram-ls complete failed ({arm}): {proc.stderr.strip()}")
    seconds = time.perf_counter() - started
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    for o in out:
        o["arm"], o["seconds"] = arm, seconds / max(1, len(out))
    return out


def identifiers(text: str) -> list[str]:
    return _IDENT.findall(text)


def score(target: dict, out: dict) -> dict:
    guess = (target["prefix"].rsplit("\n", 1)[-1] + out["completion"]).strip()
    want = target["target"]
    hit = any(c["path"] == d["path"] and c["start_line"] <= d["start_line"] <= c["end_line"]
              for c in out["citations"] for d in target["defined"])
    return {"exact": float(guess == want), "edit": difflib.SequenceMatcher(None, guess, want).ratio(),
            "ident": float(identifiers(guess) == identifiers(want)), "name": float(target["name"] in
                                                                                   identifiers(guess)),
            "hit": float(hit)}


def bootstrap_ratio(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    """95% CI of mean(a) / mean(b) over targets resampled in pairs."""
    ratios = []
    for _ in range(n):
        idx = rng.integers(0, len(a), len(a))
        den = b[idx].mean()
        ratios.append(a[idx].mean() / den if den else np.inf)
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def report(targets: dict[int, dict], rows: list[dict], meta: dict, tag: str) -> dict:
    done = {}
    for r in rows:
        done.setdefault(r["id"], {})[r["arm"]] = r
    ids = sorted(i for i, arms in done.items() if set(arms) == set(ARMS))
    table = {arm: {k: np.array([score(targets[i], done[i][arm])[k] for i in ids]) for k in
                   ("exact", "edit", "ident", "name", "hit")} for arm in ARMS}
    rng = np.random.default_rng(SEED)
    summary = {arm: {k: round(float(v.mean()), 4) if len(v) else None for k, v in cols.items()}
               | {"seconds_per_completion": round(float(np.mean([done[i][arm]["seconds"] for i in ids])), 2)
                  if ids else None}
               for arm, cols in table.items()}
    em = {arm: table[arm]["exact"] for arm in ARMS}
    result = {**meta, "n": len(ids), "arms": summary,
              "engram_over_none_exact": round(float(em["engram"].mean() / em["none"].mean()), 3)
              if len(ids) and em["none"].mean() else None,
              "engram_over_none_exact_ci95": bootstrap_ratio(em["engram"], em["none"], rng) if ids else None,
              "engram_over_bm25_exact": round(float(em["engram"].mean() / em["bm25"].mean()), 3)
              if len(ids) and em["bm25"].mean() else None,
              "share_of_oracle_gain": round(float((em["engram"].mean() - em["none"].mean())
                                                  / (em["oracle"].mean() - em["none"].mean())), 3)
              if len(ids) and em["oracle"].mean() > em["none"].mean() else None,
              "per_project": {p: sum(targets[i]["project"] == p for i in ids)
                              for p in sorted({t["project"] for t in targets.values()})},
              "targets": [{"id": i, "project": targets[i]["project"], "path": targets[i]["path"],
                           "line": targets[i]["line"], "name": targets[i]["name"], "target": targets[i]["target"],
                           **{arm: {"completion": done[i][arm]["completion"], "citations": done[i][arm]["citations"],
                                    **score(targets[i], done[i][arm])} for arm in ARMS}} for i in ids]}
    stem = f"completion_eval{'-' + tag if tag else ''}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1))
    lines = ["| arm | exact match | edit similarity | identifier match | needed name written | definition among "
             "the snippets | s / completion |", "|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        s = summary[arm]
        lines.append(f"| {arm} | {s['exact']} | {s['edit']} | {s['ident']} | {s['name']} | "
                     f"{s['hit'] if arm != 'none' else '–'} | {s['seconds_per_completion']} |")
    ci = result["engram_over_none_exact_ci95"]
    lines += ["", f"n = {len(ids)} targets ({', '.join(f'{p} {c}' for p, c in result['per_project'].items())}); "
              f"model {meta['model']}, context length {meta['context_length']}, max {meta['max_tokens']} tokens, "
              f"one line, greedy; measured under load.",
              f"Exact match engram / none: {result['engram_over_none_exact']} (paired bootstrap 95% CI "
              f"{ci[0]:.2f}–{ci[1]:.2f}); engram / BM25: {result['engram_over_bm25_exact']}; engram's share of "
              f"the oracle's gain over none: {result['share_of_oracle_gain']}." if ci else "No complete targets."]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return result


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.completion_eval")
    p.add_argument("--work", type=Path, default=Path("/tmp/engram-completion-eval"),
                   help="scratch folder for the projects, the engram stores and the requests")
    p.add_argument("--prepare", action="store_true", help="download and unpack the projects first")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--model", help="GGUF path or shipped model name (default: the shipped 0.5B)")
    p.add_argument("--context-length", type=int, default=1024)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--tag", default="", help="suffix of the results files (e.g. 1.5b)")
    args = p.parse_args()
    if args.prepare:
        prepare(args.work)
    targets = choose(args.work, args.n)
    by_id = {t["id"]: t for t in targets}
    cache = args.work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    rows_file = cache / f"rows{'-' + args.tag if args.tag else ''}.jsonl"
    rows = [json.loads(l) for l in rows_file.read_text().splitlines()] if rows_file.exists() else []
    have = {(r["id"], r["arm"]) for r in rows}
    meta = {"model": args.model or "qwen2.5-coder-0.5b-instruct", "context_length": args.context_length,
            "max_tokens": args.max_tokens, "projects": PROJECTS, "seed": SEED}
    windows: dict = {}
    per_project: dict[str, list[dict]] = {}
    for t in targets:
        per_project.setdefault(t["project"], []).append(t)
    rounds = max(len(v) for v in per_project.values()) // CHUNK + 1
    for r in range(rounds):  # a round: CHUNK targets of every project, all four arms
        for project, pool in per_project.items():
            items = pool[r * CHUNK:(r + 1) * CHUNK]
            if not items:
                continue
            folder = args.work / "projects" / project
            if project not in windows:
                windows[project] = Windows(folder)
            for arm in ARMS:
                todo = [t for t in items if (t["id"], arm) not in have]
                if not todo:
                    continue
                new = run_arm(arm, folder, todo, args, cache, windows)
                with rows_file.open("a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in new)
                rows += new
                have.update((r["id"], arm) for r in new)
        result = report(by_id, rows, meta, args.tag)
        print(f"{result['n']} targets done: " + ", ".join(f"{a} {result['arms'][a]['exact']}" for a in ARMS),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
