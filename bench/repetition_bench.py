"""Repetition controls per role, chosen by measurement with the shipped Qwen2.5-Coder-0.5B model.

Research role: explain prompts (questions of bench/explain_eval about the unseen ``tallyho`` package, and the
stdlib ``email`` questions a user saw loop) answered under each candidate sampling: the share of repeated word
4-grams, repeated sentences, and the facts stated (a penalty that garbles names costs facts). Coding role: rewrite
prompts: whether the code block parses and how many of its non-blank lines repeat an earlier one. The same worker
serves every configuration, so each prompt is read once (KV cache) and only generation differs.

Run: ``nice -n 10 python bench/repetition_bench.py``. Writes bench/results/repetition.{json,md}.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sysconfig
import tempfile
import time
from pathlib import Path

from engram_ls.inference import Inference, InferenceSettings, ModelSettings, SamplingSettings, Snippet, models
from engram_ls.server import code_check, sentences

from bench.explain_eval.scoring import facts_stated, repeated_ngram_share, repeated_sentences

RESULTS = Path(__file__).parent / "results"
EVAL = Path(__file__).parent / "explain_eval"
MAX_TOKENS = 96   # a hover's budget: loops show within it, and the loaded 2 cores allow no more
RESEARCH = {"neutral": SamplingSettings(), "repeat_penalty=1.15": SamplingSettings(repeat_penalty=1.15),
            "dry=0.8": SamplingSettings(dry_multiplier=0.8)}
CODING = {"neutral": SamplingSettings(), "dry=0.8,allowed=4": SamplingSettings(dry_multiplier=0.8,
                                                                               dry_allowed_length=4)}
TALLYHO_IDS = ["reconcile-match", "backoff-delays", "cache-evict"]
EMAIL_QUESTIONS = [("How does FeedParser handle multipart messages?", [["boundary"], ["_parsegen", "parsegen"]])]
REWRITES = [("tallyho/ids.py", "decode_id", "Add a docstring and comments; change nothing else.")]


def index(folder: Path, files_from: Path, tmp: Path):
    from engram_ls.retrieval import Engram

    shutil.copytree(files_from, folder, ignore=shutil.ignore_patterns("__pycache__"))
    engram = Engram.open(folder.parent if folder.name == "tallyho" else folder)
    engram.index_workspace()
    return engram


def snippets(engram, query: str, k: int = 4) -> list[Snippet]:
    return [Snippet(h.path, h.start_line, h.end_line, h.text) for h in engram.search(query, k=k)]


def source_of(path: str, symbol: str) -> str:
    import ast

    text = (EVAL / path).read_text()
    node = next(n for n in ast.walk(ast.parse(text)) if getattr(n, "name", None) == symbol)
    return "\n".join(text.splitlines()[node.lineno - 1:node.end_lineno])


def repeated_lines(code: str) -> int:
    seen, repeats = set(), 0
    for line in (l.strip() for l in code.splitlines()):
        if len(line) > 3:
            repeats += line in seen
            seen.add(line)
    return repeats


def write(result: dict) -> None:
    """After every answer, so that a run stopped early keeps what it measured."""
    (RESULTS / "repetition.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "repetition.md").write_text(markdown(result))


async def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="repetition-") as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("ENGRAM_LS_MODELS", str(models.models_dir()))  # the assembled models stay shared
        os.environ["ENGRAM_LS_CACHE"] = str(tmp / "cache")
        tallyho = index(tmp / "ws" / "tallyho", EVAL / "tallyho", tmp)
        email = index(tmp / "email", Path(sysconfig.get_paths()["stdlib"]) / "email", tmp)
        questions = {q["id"]: q for q in json.loads((EVAL / "questions.json").read_text())}
        research_prompts = [(questions[i]["question"], questions[i]["facts"], snippets(tallyho, questions[i]["question"]))
                            for i in TALLYHO_IDS]
        research_prompts += [(q, facts, snippets(email, q)) for q, facts in EMAIL_QUESTIONS]
        coding_prompts = [(f"{instr}\nReturn only the complete rewritten code in one fenced block.\n```python\n"
                           f"{source_of(path, sym)}\n```", snippets(tallyho, source_of(path, sym), 3))
                          for path, sym, instr in REWRITES]

    settings = InferenceSettings(coding=ModelSettings(pool_size=1, threads=1), research=ModelSettings(threads=1),
                                 hang_timeout_s=120, request_timeout_s=900)
    out = {"model": None, "max_tokens": MAX_TOKENS, "research": {}, "coding": {}}
    async with Inference(settings) as inf:
        out["model"] = inf.status()["research"]["model"]
        for question, facts, snips in research_prompts:
            for name, sampling in RESEARCH.items():
                t0 = time.perf_counter()
                a = await inf.ask(question, snips, role="research", max_tokens=MAX_TOKENS, sampling=sampling)
                text, cut = sentences.finish(a.text, a.finish, a.usage.get("completion_tokens", 0))
                row = {"question": question, "raw": a.text, "answer": text, "cut": cut,
                       "repeated_4gram_share": round(repeated_ngram_share(a.text), 3),
                       "repeated_sentences": repeated_sentences(a.text), "facts": facts_stated(text, facts),
                       "facts_required": len(facts), "seconds": round(time.perf_counter() - t0, 1)}
                out["research"].setdefault(name, []).append(row)
                write(out)
                print(f"research {name}: {question[:40]} rep={row['repeated_4gram_share']} "
                      f"facts={row['facts']}/{row['facts_required']} {row['seconds']} s", flush=True)
        for prompt, snips in coding_prompts:
            for name, sampling in CODING.items():
                t0 = time.perf_counter()
                a = await inf.ask(prompt, snips, role="coding", max_tokens=2 * MAX_TOKENS, sampling=sampling)
                problems = code_check.answer_problems(a.text, "python")
                row = {"prompt": prompt.splitlines()[0], "raw": a.text, "finish": a.finish,
                       "parses": not problems, "problems": [str(p) for p in problems],
                       "repeated_lines": repeated_lines(a.text), "seconds": round(time.perf_counter() - t0, 1)}
                out["coding"].setdefault(name, []).append(row)
                write(out)
                print(f"coding {name}: parses={row['parses']} repeated_lines={row['repeated_lines']} "
                      f"{row['seconds']} s", flush=True)
    return out


def markdown(r: dict) -> str:
    lines = ["# Repetition controls per role", "", f"Model: {r['model']}, greedy, max {r['max_tokens']} tokens "
             f"(coding {2 * r['max_tokens']}); measured under load.", "",
             "## Research (explain prompts)", "",
             "| sampling | mean repeated 4-gram share | repeated sentences | facts stated / required |",
             "| --- | --- | --- | --- |"]
    for name, rows in r["research"].items():
        share = sum(x["repeated_4gram_share"] for x in rows) / len(rows)
        lines.append(f"| {name} | {share:.3f} | {sum(x['repeated_sentences'] for x in rows)} | "
                     f"{sum(x['facts'] for x in rows)}/{sum(x['facts_required'] for x in rows)} |")
    lines += ["", "## Coding (rewrite prompts)", "", "| sampling | code parses | repeated code lines |",
              "| --- | --- | --- |"]
    for name, rows in r["coding"].items():
        lines.append(f"| {name} | {sum(x['parses'] for x in rows)}/{len(rows)} | "
                     f"{sum(x['repeated_lines'] for x in rows)} |")
    lines += ["", "## Answers", ""]
    for name, rows in r["research"].items():
        for x in rows:
            lines.append(f"- *{name}* — {x['question']}: {x['raw'].replace(chr(10), ' ')}")
    return "\n".join(lines) + "\n"


def main() -> int:
    write(asyncio.run(run()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
