"""Does engram-retrieved context make completions better? Repo-level next-line completion, three arms.

Targets are lines of real third-party packages (site-packages) that use a name defined in *another* file of the
same package. The model (shipped Qwen2.5-Coder-0.5B, through engram-ls's own workers and FIM prompt builder, greedy)
sees the file's prefix and suffix, and: no extra context (``none``); the top snippets retrieved by engram-ls
(``engram``); the top snippets retrieved by BM25 over the same chunks (``bm25``). Both retrieval arms get the same
token budget (the prompt builder packs snippets by the model's own token count) and never see the target file.

Also an explanation check: for defined symbols, the share of retrieved citations that contain the symbol
(citation precision) and whether the citations the model is given include the defining file.

Run: ``python -m bench.context_eval [--n 60]``. Writes bench/results/context_eval.{json,md} and
docs/context_eval.png.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import difflib
import json
import random
import re
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from engram_ls.inference import Inference, InferenceSettings, ModelSettings, Snippet
from engram_ls.retrieval import Engram

from bench.retrieval_bench import BM25

SITE = Path(sysconfig.get_paths()["purelib"])
PACKAGES = ["jinja2", "cattrs", "pygls", "pathspec"]
SEED = 11
K = 5
ROOT = Path(__file__).resolve().parents[2]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def defined_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if len(n) > 3 and not n.startswith("__")}


def targets(package: str, rng: random.Random, per_package: int) -> list[dict]:
    files = {}
    for f in sorted((SITE / package).rglob("*.py")):
        text = f.read_text(encoding="utf-8", errors="replace")
        try:
            files[f.relative_to(SITE).as_posix()] = (text, ast.parse(text))
        except SyntaxError:
            continue
    defs = {path: defined_names(tree) for path, (_, tree) in files.items()}
    found = []
    for path, (text, _) in files.items():
        elsewhere = set().union(*(d for p, d in defs.items() if p != path)) - defs[path]
        lines = text.split("\n")
        for i, line in enumerate(lines):
            s = line.strip()
            if not 12 <= len(s) <= 90 or s.startswith(("def ", "class ", "import ", "from ", "#", "@", '"', "'")):
                continue
            used = set(_IDENT.findall(s)) & elsewhere
            if used and i > 5:
                found.append({"path": path, "line": i, "text": s, "cross": sorted(used),
                              "prefix": "\n".join(lines[:i]) + "\n" + line[: len(line) - len(line.lstrip())],
                              "suffix": "\n" + "\n".join(lines[i + 1:])})
    rng.shuffle(found)
    return found[:per_package]


def first_line(text: str) -> str:
    return text.strip("\n").split("\n")[0].strip()


def identifiers(text: str) -> set[str]:
    return set(_IDENT.findall(text))


def bootstrap(values: list[float], rng: np.random.Generator, n: int = 1000) -> tuple[float, float]:
    arr = np.asarray(values, float)
    means = [arr[rng.integers(0, len(arr), len(arr))].mean() for _ in range(n)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def local_window(item: dict, lines: int) -> dict:
    """The same local code for every arm: the last ``lines`` lines of the prefix, a quarter as many of the suffix
    (small enough that the prompt builder never trims them, with or without snippets)."""
    if not lines:
        return item
    prefix = item["prefix"].split("\n")
    suffix = item["suffix"].split("\n")
    return {**item, "prefix": "\n".join(prefix[-lines:]), "suffix": "\n".join(suffix[: max(2, lines // 4)])}


async def run(n: int, local_lines: int = 0) -> dict:
    rng = random.Random(SEED)
    work = Path(tempfile.mkdtemp(prefix="engram-ctx-"))
    items = []
    engrams, bm25s = {}, {}
    for package in PACKAGES:
        dest = work / package
        shutil.copytree(SITE / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
        e = Engram.open(dest, cache_dir=work / "cache")
        e.index_workspace()
        chunks, texts = [], []
        for path in e.documents():
            lines = (e.document_text(path) or "").split("\n")
            for c in e.chunks(path):
                chunks.append((path, c.start_line, c.end_line))
                texts.append("\n".join(lines[c.start_line - 1:c.end_line]))
        engrams[package] = e
        bm25s[package] = (BM25(chunks, texts), {(p, s, t): txt for (p, s, t), txt in zip(chunks, texts)})
        items.extend({**t, "package": package} for t in targets(package, rng, n // len(PACKAGES) + 1))
    items = [local_window(it, local_lines) for it in items[:n]]

    def retrieve(arm: str, item: dict) -> list[Snippet]:
        query = "\n".join(item["prefix"].split("\n")[-10:])
        if arm == "engram":
            hits = [h for h in engrams[item["package"]].search(query, K + 5) if h.path != item["path"]][:K]
            return [Snippet(h.path, h.start_line, h.end_line, h.text) for h in hits]
        bm, texts = bm25s[item["package"]]
        hits = [c for c in bm.search(query, K + 5) if c[0] != item["path"]][:K]
        return [Snippet(p, s, e, texts[(p, s, e)]) for p, s, e in hits]

    settings = InferenceSettings(coding=ModelSettings(context_length=1024, threads=2, prompt_cache_mb=0),
                                 research=ModelSettings(context_length=1024, threads=1), request_timeout_s=600)
    arms = {"none": [], "engram": [], "bm25": []}
    started = time.perf_counter()
    async with Inference(settings) as inference:
        for item in items:
            for arm in arms:
                snippets = [] if arm == "none" else retrieve(arm, item)
                answer = await inference.complete(item["prefix"], item["suffix"], snippets, max_tokens=32,
                                                  path=item["path"], repo=item["package"], stop=["\n"])
                guess = first_line(answer.text)
                arms[arm].append({"exact": float(guess == item["text"]),
                                  "edit": difflib.SequenceMatcher(None, guess, item["text"]).ratio(),
                                  "ident": float(set(item["cross"]) <= identifiers(guess)),
                                  "context_tokens": answer.usage.get("prompt_tokens", 0)})
        # explanation check: citations for cross-file symbols, as hover retrieves them
        symbols = sorted({(it["package"], name) for it in items for name in it["cross"]})[:20]
        precise, total, right_file = 0, 0, 0
        for package, name in symbols:
            e = engrams[package]
            hits = e.search(f"def {name}():", 4)
            total += len(hits)
            precise += sum(1 for h in hits if re.search(rf"\b{re.escape(name)}\b", h.text))
            defining = {p for p in e.documents()
                        if re.search(rf"^(?:class|def|async def)\s+{re.escape(name)}\b|^{re.escape(name)}\s*=",
                                     e.document_text(p) or "", re.M)}
            answer = await inference.ask(f"Explain briefly what `{name}` is.", [Snippet(h.path, h.start_line,
                                         h.end_line, h.text) for h in hits], role="research", max_tokens=16)
            right_file += bool({s.path for s in answer.cited} & defining)
    seconds = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    boot = np.random.default_rng(SEED)
    out = {"arms": {}, "n": len(items), "seconds": round(seconds, 1), "packages": PACKAGES, "local_lines": local_lines,
           "citation_precision": round(precise / max(1, total), 4),
           "defining_file_cited": round(right_file / max(1, len(symbols)), 4), "symbols": len(symbols)}
    for arm, rows in arms.items():
        em = [r["exact"] for r in rows]
        es = [r["edit"] for r in rows]
        out["arms"][arm] = {"exact_match": round(float(np.mean(em)), 4), "edit_similarity": round(float(np.mean(es)), 4),
                            "identifier_match": round(float(np.mean([r["ident"] for r in rows])), 4), "n": len(rows),
                            "exact_match_ci95": [round(x, 4) for x in bootstrap(em, boot)],
                            "edit_similarity_ci95": [round(x, 4) for x in bootstrap(es, boot)],
                            "mean_prompt_tokens": round(float(np.mean([r["context_tokens"] for r in rows])), 1)}
    return out


def report(result: dict) -> str:
    a = result["arms"]
    rows = ["| arm | exact match (95% CI) | edit similarity (95% CI) | cross-file identifiers right | prompt tokens |",
            "|---|---|---|---|---|"]
    for arm in ("none", "engram", "bm25"):
        r = a[arm]
        rows.append(f"| {arm} | {r['exact_match']:.3f} ({r['exact_match_ci95'][0]:.3f}–{r['exact_match_ci95'][1]:.3f}) | "
                    f"{r['edit_similarity']:.3f} ({r['edit_similarity_ci95'][0]:.3f}–{r['edit_similarity_ci95'][1]:.3f}) | "
                    f"{r['identifier_match']:.3f} | {r['mean_prompt_tokens']:.0f} |")
    base = a["none"]["exact_match"]
    gain = a["engram"]["exact_match"] - base
    lift = gain / base if base else (float("inf") if gain > 0 else 0.0)
    rows.append("")
    rows.append(f"n = {result['n']} targets from {', '.join(result['packages'])}; {result['seconds']} s. "
                f"Engram vs none: {lift * 100:+.0f}% exact match (target >= +20%: {'met' if lift >= 0.2 else 'not met'}); "
                f"engram vs BM25: {'>=' if a['engram']['exact_match'] >= a['bm25']['exact_match'] else '<'} "
                f"(target >=). Citation precision {result['citation_precision']:.2f} (target >= 0.9: "
                f"{'met' if result['citation_precision'] >= 0.9 else 'not met'}); the defining file is among the "
                f"model's citations for {result['defining_file_cited']:.0%} of {result['symbols']} symbols.")
    return "\n".join(rows)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = ["none", "engram", "bm25"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, metric, label in ((axes[0], "exact_match", "exact match"), (axes[1], "edit_similarity", "edit similarity")):
        vals = [result["arms"][a][metric] for a in arms]
        lo = [result["arms"][a][metric] - result["arms"][a][f"{metric}_ci95"][0] for a in arms]
        hi = [result["arms"][a][f"{metric}_ci95"][1] - result["arms"][a][metric] for a in arms]
        ax.bar(arms, vals, yerr=[lo, hi], color=["#999999", "#2b6cb0", "#dd8833"], capsize=4)
        ax.set_title(label)
        ax.set_ylim(0, 1)
    fig.suptitle(f"Next-line completion with retrieved context (n={result['n']}, Qwen2.5-Coder-0.5B)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--local-lines", type=int, default=0,
                        help="give every arm the same local window: this many prefix lines (0: the whole file)")
    args = parser.parse_args()
    result = asyncio.run(run(args.n, args.local_lines))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    suffix = f"-local{args.local_lines}" if args.local_lines else ""
    (out / f"context_eval{suffix}.json").write_text(json.dumps(result, indent=2))
    table = report(result)
    (out / f"context_eval{suffix}.md").write_text(table + "\n")
    plot(result, ROOT / "docs" / f"context_eval{suffix}.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
