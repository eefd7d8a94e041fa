"""Which model explains? The research role's answers to the questions in questions.json about ``tallyho`` (a
small package written for this eval, so no model has seen it), scored mechanically (scoring.py), per model.

Each question is retrieved once by engram-ls's own index (k=4, as a hover) and every model gets the same
snippets, through engram-ls's workers, research prompt and the role's repetition controls; answers are finished
as the product finishes them (cut at a sentence boundary when the token limit is hit). Hover first-token latency:
hover-shaped requests (``Explain briefly what `name` is ...``), first token timed from the call, then cancelled.

Run: ``nice -n 10 python -m bench.explain_eval [--models a,b] [--max-tokens 160]``. Writes
bench/results/explain.{json,md} (``--out`` for another name; an existing file's other models are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from engram_ls.inference import Inference, InferenceSettings, ModelSettings, SamplingSettings, Snippet, models
from engram_ls.server import sentences

from .scoring import HERE, score

RESULTS = HERE.parent / "results"
K = 4
MODELS = {"0.5b": "qwen2.5-coder-0.5b-instruct", "1.5b": "qwen2.5-coder-1.5b-instruct",
          "smollm2": "smollm2-135m-instruct"}
HOVER_SYMBOLS = ["reconcile", "TokenBucket", "decode_id"]


def load_questions() -> list[dict]:
    return json.loads((HERE / "questions.json").read_text())


def retrieve(questions: list[dict], queries: list[str]) -> tuple[list[list[Snippet]], list[list[Snippet]]]:
    """Snippets per question and per hover query, from an index of a fresh copy of the package."""
    from engram_ls.retrieval import Engram

    with tempfile.TemporaryDirectory(prefix="explain-eval-") as tmp:
        os.environ.setdefault("ENGRAM_LS_MODELS", str(models.models_dir()))  # the assembled models stay shared
        os.environ["ENGRAM_LS_CACHE"] = str(Path(tmp) / "cache")
        ws = Path(tmp) / "ws"
        shutil.copytree(HERE / "tallyho", ws / "tallyho", ignore=shutil.ignore_patterns("__pycache__"))
        engram = Engram.open(ws)
        engram.index_workspace()

        def snippets(query: str) -> list[Snippet]:
            return [Snippet(h.path, h.start_line, h.end_line, h.text) for h in engram.search(query, k=K)]

        return [snippets(q["question"]) for q in questions], [snippets(q) for q in queries]


def settings_for(model: str, threads: int) -> InferenceSettings:
    return InferenceSettings(coding=ModelSettings(path=model, threads=1, prompt_cache_mb=0),
                             research=ModelSettings(path=model, threads=threads), hang_timeout_s=120,
                             request_timeout_s=900, startup_timeout_s=600)


async def hover_latency(inf: Inference, hover_snippets, max_tokens: int) -> list[float]:
    """Seconds from the call to the first token of each hover-shaped request (then cancelled)."""
    out = []
    for i, (symbol, snips) in enumerate(zip(HOVER_SYMBOLS, hover_snippets)):
        rid = f"hover-{i}"
        start, first = time.perf_counter(), []

        def on_token(_piece, rid=rid):
            if not first:
                first.append(time.perf_counter())
                asyncio.ensure_future(inf.cancel(rid))

        await inf.ask(f"Explain briefly what `{symbol}` is and does in this code base.", snips, role="research",
                      max_tokens=max_tokens, request_id=rid, on_token=on_token)
        out.append(round(first[0] - start, 2) if first else None)
    return out


async def run_model(key: str, questions, snippets, hover_snippets, max_tokens: int, threads: int,
                    sampling: SamplingSettings | None, save) -> dict:
    inf = Inference(settings_for(MODELS[key], threads))
    started = time.perf_counter()
    await inf.start()
    load_s = time.perf_counter() - started
    rows, hover = [], []
    model = inf.status()["research"]["model"]
    used = sampling or inf.settings.research.sampling

    def result() -> dict:
        return {"model": model, "key": key, "sampling": used.frame(), "max_tokens": max_tokens, "threads": threads,
                "load_s": round(load_s, 1), "rows": rows, "hover_first_token_s": hover,
                "summary": summarize(rows, hover)}

    try:
        hover = await hover_latency(inf, hover_snippets, 96)
        save(result())
        for q, snips in zip(questions, snippets):
            t0 = time.perf_counter()
            answer = await inf.ask(q["question"], snips, role="research", max_tokens=max_tokens, sampling=sampling)
            text, cut = sentences.finish(answer.text, answer.finish, answer.usage.get("completion_tokens", 0))
            row = {"id": q["id"], "answer": text, "cut": cut, "finish": answer.finish, "usage": answer.usage,
                   "ttft_ms": answer.timings.get("ttft_ms"), "seconds": round(time.perf_counter() - t0, 1),
                   "snippets": [s.citation for s in snips], **score(text, q, snips)}
            rows.append(row)
            save(result())  # after every answer: a run stopped early keeps what it measured
            print(f"[{key}] {q['id']}: facts {row['facts']}/{row['facts_required']} names={row['names_function']} "
                  f"invented={row['invented_names']} {row['seconds']} s", flush=True)
    finally:
        await inf.close()
    return result()


def summarize(rows: list[dict], hover: list) -> dict:
    n = len(rows)
    facts = sum(r["facts"] for r in rows) / max(1, sum(r["facts_required"] for r in rows))
    invented = sum(len(r["invented_names"]) + len(r["invented_citations"]) for r in rows)
    hover_ok = [h for h in hover if h is not None]
    return {"answers": n, "facts_share": round(facts, 3),
            "names_function": sum(r["names_function"] for r in rows),
            "cites_target": sum(r["cites_target"] for r in rows),
            "target_retrieved": sum(r["target_retrieved"] for r in rows),
            "inventions_per_10": round(10 * invented / max(1, n), 2),
            "repeated_sentences": sum(r["repeated_sentences"] for r in rows),
            "repeated_4gram_share": round(statistics.mean(r["repeated_4gram_share"] for r in rows), 3) if rows else None,
            "cut": sum(bool(r["cut"]) for r in rows),
            "answer_s_median": statistics.median(r["seconds"] for r in rows) if rows else None,
            "hover_first_token_s_median": statistics.median(hover_ok) if hover_ok else None}


def markdown(results: dict) -> str:
    lines = ["# Explain eval", "", f"{results['questions']} questions over `bench/explain_eval/tallyho` "
             f"(written for this eval), k={K} snippets from engram-ls's index, research prompt, greedy; measured "
             "under load on 2 shared cores (absolute times are upper bounds).", "",
             "| model | answers | facts stated / required | names the function | cites its file:line | inventions per 10 "
             "answers | repeated sentences | cut at the limit | answer s (median) | hover first token s (median) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["models"].values():
        s = r["summary"]
        lines.append(f"| {r['model']} | {s['answers']}/{results['questions']} | {s['facts_share']:.2f} | {s['names_function']}/{s['answers']} | "
                     f"{s['cites_target']}/{s['answers']} | {s['inventions_per_10']} | {s['repeated_sentences']} | "
                     f"{s['cut']} | {s['answer_s_median']} | {s['hover_first_token_s_median']} |")
    if "target_retrieved" in results:
        lines += ["", f"The target function's snippet was among the {K} retrieved for {results['target_retrieved']}"
                  f"/{results['questions']} questions (the same snippets for every model).", ""]
    for r in results["models"].values():
        lines += [f"## {r['model']}", "", f"sampling: `{json.dumps(r['sampling'])}`", ""]
        for row in r["rows"]:
            lines.append(f"- **{row['id']}** ({row['facts']}/{row['facts_required']}"
                         f"{', invented ' + ', '.join(row['invented_names'] + row['invented_citations']) if row['invented_names'] or row['invented_citations'] else ''}"
                         f"): {row['answer'].replace(chr(10), ' ')}" + (f" *{row['cut']}*" if row["cut"] else ""))
        lines.append("")
    return "\n".join(lines)


async def hover_only(args, hover_snippets) -> int:
    """Hover first-token latency alone, one model at a time (no other run of ours competing), with the load."""
    out = {}
    for key in args.models.split(","):
        inf = Inference(settings_for(MODELS[key], args.threads))
        await inf.start()
        try:
            load = os.getloadavg()[0]
            seconds = await hover_latency(inf, hover_snippets, 96)
            out[key] = {"model": inf.status()["research"]["model"], "hover_first_token_s": seconds,
                        "load_1min_before": round(load, 1), "load_1min_after": round(os.getloadavg()[0], 1)}
            print(key, out[key], flush=True)
        finally:
            await inf.close()
        (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=1))
    return 0


def merge(out: str) -> int:
    results = {"models": {}}
    for key in MODELS:
        part = RESULTS / f"{out}-{key}.json"
        if part.exists():
            data = json.loads(part.read_text())
            results["questions"] = data["questions"]
            results["models"].update(data["models"])
    questions = load_questions()[:results.get("questions")]
    snippets, _ = retrieve(questions, [])
    results["target_retrieved"] = sum(score("", q, snips)["target_retrieved"] for q, snips in zip(questions, snippets))
    (RESULTS / f"{out}.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"{out}.md").write_text(markdown(results))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.explain_eval")
    p.add_argument("--models", default="0.5b,1.5b,smollm2")
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads for the research worker (default 1: on loaded shared cores, 2 threads spin-waited at a tenth of the speed)")
    p.add_argument("--limit", type=int, default=0, help="only the first N questions (a smoke run)")
    p.add_argument("--out", default="explain")
    p.add_argument("--hover-only", action="store_true",
                   help="only the hover first-token latency, per model one after another, into results/<out>.json")
    p.add_argument("--merge", action="store_true",
                   help="only combine results/<out>-<model>.json files (models run as separate processes)")
    args = p.parse_args()
    if args.merge:
        return merge(args.out)
    questions = load_questions()[:args.limit or None]
    snippets, hover_snippets = retrieve(questions, [f"def {s}():" for s in HOVER_SYMBOLS])
    if args.hover_only:
        return asyncio.run(hover_only(args, hover_snippets))
    path = RESULTS / f"{args.out}.json"
    results = json.loads(path.read_text()) if path.exists() else {"models": {}}
    results["questions"] = len(questions)
    def save(key):
        def write(model_result: dict) -> None:
            results["models"][key] = model_result
            path.write_text(json.dumps(results, indent=1))
            (RESULTS / f"{args.out}.md").write_text(markdown(results))
        return write

    for key in args.models.split(","):
        asyncio.run(run_model(key, questions, snippets, hover_snippets, args.max_tokens, args.threads, None,
                              save(key)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
