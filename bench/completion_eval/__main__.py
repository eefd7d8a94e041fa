"""Does engram context make completions better? CrossCodeEval-style next-line completion, four arms.

Targets (``targets.py``): first uses of a name defined in another file of the project, in recent pure-Python
packages released after the shipped models' training data (PROJECTS; pure wheels hold the same .py files as the
sdists). Every arm runs through ``engram-ls complete`` — the inline completion's own context, prompt builder and
workers — with the same context length (so the same token budget for snippets), greedy, one line:

- ``none``: the file's prefix and suffix only;
- ``engram``: ``--context engram`` (definitions and call sites of the names near the cursor, then similar code);
- ``bm25``: ``--context given`` with the best 10-line windows (stride 5) of the other files by BM25 (bm25s),
  queried with the 15 lines before the cursor, packed into the same budget;
- ``oracle``: ``--context given`` with the defining span itself — its first lines, as many as the snippet budget
  holds (counted with the model's tokenizer, through the same prompt builder): the ceiling.

Metrics: exact match of the line, edit similarity, identifier match (the line's identifiers, in order), the needed
name present; paired bootstrap 95% CI of the engram/none exact-match ratio; retrieval hit rate (a cited snippet
holds the definition's first line). Targets run in chunks, all four arms per chunk, so a run cut short (``--stop-at``)
is still paired; rows are saved as each completion arrives and a rerun with the same settings resumes. Every row
records the completion-context code it ran with (``context_sha``: the SHA-1 of the imported
``completion_context.py``), and a rerun refuses rows made with other settings. Results:
bench/results/completion_eval[-TAG].{json,md}.

Run: ``taskset -c 1 nice -n 5 python -m bench.completion_eval --prepare --n 200`` (``--prepare`` pip-downloads the
projects into --work; later runs reuse them).
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from engram_ls.inference.models import models_dir
from engram_ls.server import completion_context
from engram_ls.server.config import CompletionSettings

from .targets import project_targets

CONTEXT_SHA = hashlib.sha1(Path(completion_context.__file__).read_bytes()).hexdigest()[:10]

PROJECTS = {"a2a-sdk": "1.3.0", "any-llm-sdk": "1.40.2", "openai-agents": "0.24.0", "pydocket": "0.27.2",
            "smolagents": "1.26.0", "strands-agents": "1.62.0"}
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
ARMS = ("none", "engram", "oracle", "bm25")   # the order they run in: the main comparison first
SEED = 13
WINDOW, STRIDE, QUERY_LINES, BM25_K = 10, 5, 15, 12
ORACLE_LINES = 20
PER_FILE = {"first-use": 2, "absent": 3}   # targets a file may give: the absent kind is rarer
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


def choose(work: Path, n: int, cursor: str = "name", kind: str = "first-use") -> list[dict]:
    """``n`` targets spread evenly over the projects (a small project's shortfall goes to the others); ``cursor``:
    where in the target line the cursor sits, ``kind``: ``first-use`` or ``absent`` (``targets.project_targets``)."""
    rng = random.Random(SEED)
    pools = {}
    for name in PROJECTS:
        folder = work / "projects" / name.replace("-", "_")
        pools[folder.name] = [{**t, "project": folder.name}
                              for t in project_targets(folder, rng, 10 * n, cursor=cursor, per_file=PER_FILE[kind],
                                                       absent=kind == "absent")]
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


def oracle(folder: Path, target: dict, fits) -> list[dict]:
    """The definition's first lines (at most ``ORACLE_LINES``), as many as the prompt builder packs: a snippet that
    does not fit the budget would be dropped whole and the oracle would be ``none``."""
    span = target["defined"][0]
    lines = (folder / span["path"]).read_text(encoding="utf-8", errors="replace").split("\n")
    for end in range(min(span["end_line"], span["start_line"] + ORACLE_LINES - 1), span["start_line"] - 1, -1):
        snippet = {"path": span["path"], "start_line": span["start_line"], "end_line": end,
                   "text": "\n".join(lines[span["start_line"] - 1:end])}
        if fits(target, snippet):
            return [snippet]
    return [snippet]


def budget_check(args):
    """``fits(target, snippet)``: whether the worker's prompt builder, with the model's own tokenizer (loaded
    vocabulary-only), packs the snippet into this run's prompt."""
    from llama_cpp import Llama

    from engram_ls.inference import Snippet
    from engram_ls.inference.models import resolve
    from engram_ls.inference.prompts import fim_prompt

    vocab = Llama(model_path=str(resolve(args.model)), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=True))

    def fits(target: dict, s: dict) -> bool:
        _, cited = fim_prompt(target["prefix"], target["suffix"],
                              [Snippet(s["path"], s["start_line"], s["end_line"], s["text"])], path=target["path"],
                              repo=target["project"], n_ctx=args.context_length, max_tokens=args.max_tokens,
                              count=count, suffix_tokens=args.suffix_tokens)
        return bool(cited)

    return fits


def run_arm(arm: str, folder: Path, items: list[dict], args, cache: Path, windows: dict, fits, save) -> None:
    """One ``engram-ls complete`` run for ``items``; ``save(row)`` gets each row as its line arrives."""
    requests = []
    for t in items:
        r = {"id": t["id"], "path": t["path"], "prefix": t["prefix"], "suffix": t["suffix"]}
        if arm == "bm25":
            r["snippets"] = windows[folder.name].snippets(t["path"], t["prefix"])
        elif arm == "oracle":
            r["snippets"] = oracle(folder, t, fits)
        requests.append(r)
    req_file = cache / f"requests-{args.tag or 'run'}-{arm}.jsonl"  # runs with other tags may go on beside it
    req_file.write_text("".join(json.dumps(r) + "\n" for r in requests))
    context = {"none": "none", "engram": "engram"}.get(arm, "given")
    cmd = [sys.executable, "-m", "engram_ls.server.cli", "complete", str(folder), "--requests-file", str(req_file),
           "--context", context, "--one-line", "--max-tokens", str(args.max_tokens), "--context-length",
           str(args.context_length), "--suffix-tokens", str(args.suffix_tokens), "--json"]
    if args.model:
        cmd += ["--model-path", args.model]
    # the stores go to the scratch cache; the models stay where they are (ENGRAM_LS_CACHE alone would move them)
    env = dict(os.environ, ENGRAM_LS_CACHE=str(cache), ENGRAM_LS_MODELS=str(models_dir()))
    started = last = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        for line in proc.stdout:
            if line.strip():
                now = time.perf_counter()
                row = json.loads(line)
                # seconds: since the previous answer (the first includes start-up: model load, index open)
                row.update(arm=arm, seconds=round(now - last, 3), first=last == started,
                           context_sha=CONTEXT_SHA)
                last = now
                save(row)
        err = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"engram-ls complete failed ({arm}): {err.strip()}")


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
        num, den = a[idx].mean(), b[idx].mean()
        if den or num:  # 0 / 0 resamples say nothing
            ratios.append(num / den if den else np.inf)
    if not ratios:
        return float("nan"), float("nan")
    return tuple(round(float(np.percentile(ratios, q, method="nearest")), 3) for q in (2.5, 97.5))


def bootstrap_diff(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    """95% CI of mean(a) - mean(b) over targets resampled in pairs (defined when the ratio's denominator is 0)."""
    diffs = [float((a[idx] - b[idx]).mean()) for idx in (rng.integers(0, len(a), len(a)) for _ in range(n))]
    return round(float(np.percentile(diffs, 2.5)), 4), round(float(np.percentile(diffs, 97.5)), 4)


def report(targets: dict[int, dict], rows: list[dict], meta: dict, tag: str) -> dict:
    """Each arm over the targets where it ran together with ``none`` and ``engram`` (the main pair: ``--arms``
    may run the others later, for the same targets); each comparison over the targets that have both its arms."""
    done: dict[int, dict] = {}
    for r in rows:
        if r["id"] in targets:
            done.setdefault(r["id"], {})[r["arm"]] = r
    scores = {i: {arm: score(targets[i], row) for arm, row in arms.items()} for i, arms in done.items()}
    rng = np.random.default_rng(SEED)

    def having(*arms):
        return sorted(i for i, got in done.items() if all(a in got for a in arms))

    def col(arm, ids, k="exact"):
        return np.array([scores[i][arm][k] for i in ids])

    main = having("none", "engram")
    summary = {}
    for arm in ARMS:
        ids = [i for i in main if arm in done[i]]
        warm = [done[i][arm]["seconds"] for i in ids if not done[i][arm].get("first")]
        summary[arm] = {"n": len(ids)} | {k: round(float(col(arm, ids, k).mean()), 4) if ids else None
                                          for k in ("exact", "edit", "ident", "name", "hit")} | {
            "seconds_per_completion": round(float(np.mean([done[i][arm]["seconds"] for i in ids])), 2)
            if ids else None, "seconds_median_warm": round(float(np.median(warm)), 2) if warm else None}

    def ratio(a, b):
        ids = [i for i in main if a in done[i] and b in done[i]]
        x, y = col(a, ids), col(b, ids)
        return {"n": len(ids), "ratio": round(float(x.mean() / y.mean()), 3) if ids and y.mean() else None,
                "ci95": bootstrap_ratio(x, y, rng) if ids else None,
                "difference_ci95": bootstrap_diff(x, y, rng) if ids else None}

    def kind(t):  # what the cursor needs: a call (``name(``), a member (``x.name``), or another use
        at = t["target"].find(t["name"], len(t["prefix"].rsplit("\n", 1)[-1].lstrip()))
        rest = t["target"][at + len(t["name"]):].lstrip() if at >= 0 else ""
        return "call" if rest.startswith("(") else "member" if t["target"][at - 1:at] == "." else "other"

    by_kind = {}
    for k in ("call", "member", "other"):
        ids = [i for i in main if kind(targets[i]) == k]
        by_kind[k] = {"n": len(ids)} | {arm: round(float(col(arm, [i for i in ids if arm in done[i]]).mean()), 4)
                                        if any(arm in done[i] for i in ids) else None for arm in ARMS}
    trio = [i for i in main if "oracle" in done[i]]
    gain = col("oracle", trio).mean() - col("none", trio).mean() if trio else 0.0
    result = {**meta, "n": len(main), "arms": summary,
              "engram_over_none": ratio("engram", "none"), "engram_over_bm25": ratio("engram", "bm25"),
              "oracle_over_none": ratio("oracle", "none"), "exact_by_kind": by_kind,
              "share_of_oracle_gain": {"n": len(trio), "share": round(float(
                  (col("engram", trio).mean() - col("none", trio).mean()) / gain), 3) if gain > 0 else None},
              "context_sha": sorted({row.get("context_sha") or "?" for i in main for row in done[i].values()}),
              "per_project": {p: sum(targets[i]["project"] == p for i in main)
                              for p in sorted({t["project"] for t in targets.values()})},
              "targets": [{"id": i, "project": targets[i]["project"], "path": targets[i]["path"],
                           "line": targets[i]["line"], "name": targets[i]["name"], "target": targets[i]["target"],
                           **{arm: {"completion": row["completion"], "citations": row["citations"],
                                    **scores[i][arm]} for arm, row in done[i].items()}} for i in main]}
    stem = f"completion_eval{'-' + tag if tag else ''}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1))
    lines = ["| arm | n | exact match | edit similarity | identifier match | needed name written | definition among "
             "the snippets | s / completion (mean, with start-up) | s (median, warm) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        a = summary[arm]
        if a["n"]:
            lines.append(f"| {arm} | {a['n']} | {a['exact']} | {a['edit']} | {a['ident']} | {a['name']} | "
                         f"{a['hit'] if arm != 'none' else '–'} | {a['seconds_per_completion']} | "
                         f"{a['seconds_median_warm']} |")

    def said(name, r):
        if not r["n"]:
            return f"{name}: not run"
        ci, d = r["ci95"], r["difference_ci95"]
        return (f"{name}: {r['ratio']} over {r['n']} targets (paired bootstrap 95% CI {ci[0]}–{ci[1]}; "
                f"difference {d[0]:+.3f} to {d[1]:+.3f})")

    share = result["share_of_oracle_gain"]
    lines += ["", f"{len(main)} targets with none and engram ({', '.join(f'{p} {c}' for p, c in result['per_project'].items())}); "
              f"model {meta['model']}, context length {meta['context_length']}, max {meta['max_tokens']} tokens, "
              f"one line, greedy; `{meta.get('command', '')}`; load average {meta.get('load_start', '?')} at the "
              f"start, {meta.get('load_now', '?')} at this report; completion context "
              f"{', '.join(result['context_sha'])} (SHA-1 of completion_context.py, first 10)."
              + (f" Left out: {meta['left_out']['n']} targets whose receiver the file shows to be another object "
                 f"({', '.join(f'{k} {v}' for k, v in meta['left_out']['why'].items())})."
                 if meta.get("left_out", {}).get("n") else ""),
              "Exact match — " + "; ".join([said("engram / none", result["engram_over_none"]),
                                            said("engram / BM25", result["engram_over_bm25"]),
                                            said("oracle / none", result["oracle_over_none"])])
              + f"; engram's share of the oracle's gain over none: {share['share']} ({share['n']} targets).",
              "Exact match by what the cursor needs — " + "; ".join(
                  f"{k} (n = {v['n']}): " + ", ".join(f"{a} {v[a]}" for a in ARMS if v[a] is not None)
                  for k, v in by_kind.items() if v["n"]) + "."]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return result


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def stop_time(hhmm: str | None) -> datetime.datetime | None:
    """Today's (or, if already past by more than 12 hours, tomorrow's) ``HH:MM`` UTC."""
    if not hhmm:
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    h, m = map(int, hhmm.split(":"))
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return t + datetime.timedelta(days=1) if t < now - datetime.timedelta(hours=12) else t


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.completion_eval")
    p.add_argument("--work", type=Path, default=Path("/tmp/engram-completion-eval"),
                   help="scratch folder for the projects, the engram stores and the requests")
    p.add_argument("--prepare", action="store_true", help="download and unpack the projects first")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--model", help="GGUF path or shipped model name (default: the shipped 0.5B)")
    p.add_argument("--context-length", type=int, default=1024)
    p.add_argument("--suffix-tokens", type=int, default=CompletionSettings().suffix_tokens)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--tag", default="", help="suffix of the results and rows files (e.g. 1.5b)")
    p.add_argument("--cursor", choices=("name", "line"), default="name", help="just before the cross-file name "
                   "(CrossCodeEval's place, the default) or after the line's indentation")
    p.add_argument("--targets", choices=("first-use", "absent"), default="first-use", help="first uses of names "
                   "defined in another file (the imports may show them), or only names the file shows nowhere else "
                   "(the issue's definition: mostly members of project classes)")
    p.add_argument("--chunk", type=int, default=6, help="targets per project and arm in one engram-ls run")
    p.add_argument("--stop-at", help="UTC time HH:MM after which no new chunk starts (the run stays paired)")
    p.add_argument("--report-ids", default="", help="FROM-TO: report only the targets with these ids from the rows "
                   "already run (say, those a context variant was not chosen on); writes the tag's results with "
                   "-ids-FROM-TO")
    p.add_argument("--with-foreign", action="store_true", help="keep the targets whose receiver the file shows to "
                   "be a third-party object (left out since 2026-12-06; for the runs made before)")
    p.add_argument("--arms", default=",".join(ARMS), help="the arms to run, in order (default: all four; rows of "
                   "the others are kept: a later run can add them for the same targets)")
    args = p.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    if not arms or any(a not in ARMS for a in arms):
        raise SystemExit(f"--arms: choose from {', '.join(ARMS)}")
    if args.prepare:
        prepare(args.work)
    chosen = choose(args.work, args.n, args.cursor, args.targets)
    # members of third-party objects (``targets.foreign``) have no project definition to find: left out, unless
    # --with-foreign reproduces the runs made before the mark (2026-12-06)
    targets = [t for t in chosen if args.with_foreign or not t["foreign"]]
    by_id = {t["id"]: t for t in targets}
    cache = args.work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    rows_file = cache / f"rows{'-' + args.tag if args.tag else ''}.jsonl"
    settings = {"model": args.model or "qwen2.5-coder-0.5b-instruct", "context_length": args.context_length,
                "max_tokens": args.max_tokens, "suffix_tokens": args.suffix_tokens, "projects": PROJECTS, "seed": SEED,
                "bm25": [WINDOW, STRIDE, QUERY_LINES, BM25_K], "oracle_lines": ORACLE_LINES}
    if args.cursor != "line":  # rows of the runs made before the option exist only for "line"
        settings["cursor"] = args.cursor
    if args.targets != "first-use":  # likewise
        settings["targets"] = args.targets
    settings_file = rows_file.with_suffix(".settings.json")
    if rows_file.exists() and json.loads(settings_file.read_text()) != settings:
        raise SystemExit(f"{rows_file} holds rows made with other settings ({settings_file}): use another --tag")
    settings_file.write_text(json.dumps(settings))
    rows = [json.loads(l) for l in rows_file.read_text().splitlines()] if rows_file.exists() else []
    have = {(r["id"], r["arm"]) for r in rows}
    meta = {**settings, "left_out": {"n": len(chosen) - len(targets), "ids": sorted(set(
                t["id"] for t in chosen) - set(by_id)), "why": dict(Counter(t["foreign"] for t in chosen
                                                                            if t["id"] not in by_id))},
            "command": " ".join(["python -m bench.completion_eval", *sys.argv[1:]]),
            "load_start": load(), "started": now_utc()}
    if args.report_ids:  # no run: the rows already there, for a range of targets
        lo, hi = (int(x) for x in args.report_ids.split("-"))
        result = report({i: t for i, t in by_id.items() if lo <= i <= hi}, rows, meta | {"load_now": load()},
                        f"{args.tag}-ids-{lo}-{hi}")
        print(f"{result['n']} targets reported: engram / none {result['engram_over_none']}", flush=True)
        return 0
    deadline = stop_time(args.stop_at)
    fits = budget_check(args)

    def save(row: dict) -> None:
        with rows_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        have.add((row["id"], row["arm"]))

    windows: dict = {}
    per_project: dict[str, list[dict]] = {}
    for t in targets:
        per_project.setdefault(t["project"], []).append(t)
    rounds = max(len(v) for v in per_project.values()) // args.chunk + 1
    for r in range(rounds):  # a round: --chunk targets of every project, all four arms
        for project, pool in per_project.items():
            items = pool[r * args.chunk:(r + 1) * args.chunk]
            if not items or all((t["id"], arm) in have for t in items for arm in arms):
                continue
            if deadline and datetime.datetime.now(datetime.timezone.utc) >= deadline:
                print(f"stopped at --stop-at {args.stop_at}", flush=True)
                report(by_id, rows, meta | {"load_now": load(), "stopped": now_utc()}, args.tag)
                return 0
            folder = args.work / "projects" / project
            if project not in windows:
                windows[project] = Windows(folder)
            for arm in arms:
                todo = [t for t in items if (t["id"], arm) not in have]
                if todo:
                    run_arm(arm, folder, todo, args, cache, windows, fits, save)
            report(by_id, rows, meta | {"load_now": load()}, args.tag)
        result = report(by_id, rows, meta | {"load_now": load()}, args.tag)
        print(f"{result['n']} targets done: " + ", ".join(f"{a} {result['arms'][a]['exact']}" for a in ARMS),
              now_utc(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
