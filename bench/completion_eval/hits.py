"""Retrieval hit rate without a model: how often the defining span reaches the prompt.

For every target of the evaluation, each retrieval arm's snippets are packed exactly as the worker packs them
(``prompts.fim_prompt`` with the model's own tokenizer, loaded vocabulary-only) and a target counts as a hit when a
packed snippet holds the definition's first line (its span covers the line and its text shows it: an outline
shows only some lines of its span). Arms: ``engram`` (the completion context: definitions, call
sites, then similar code), ``similar`` (``Engram.search`` alone, the context before issue 13), ``bm25``.

Run: ``python -m bench.completion_eval.hits --n 400``. Writes bench/results/completion_hits[-TAG].{json,md}.
``--targets absent --n 600 --skip 245`` is the development set: the absent targets after the 245 the README reports,
for choosing a change without looking at the targets that will measure it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

from engram_ls.inference import Snippet
from engram_ls.inference.models import resolve
from engram_ls.inference.prompts import fim_prompt
from engram_ls.retrieval import Engram
from engram_ls.server.config import CompletionSettings
from engram_ls.server import completion_context
from engram_ls.server.completion_context import QUERY_LINES, completion_hits

from .__main__ import RESULTS, Windows, choose

ARMS = ("engram", "similar", "bm25")


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.completion_eval.hits")
    p.add_argument("--work", type=Path, default=Path("/tmp/engram-completion-eval"))
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--context-length", type=int, default=768)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--suffix-tokens", type=int, default=CompletionSettings().suffix_tokens)
    p.add_argument("--tag", default="", help="suffix of the results files")
    p.add_argument("--cursor", choices=("name", "line"), default="name")
    p.add_argument("--targets", choices=("first-use", "absent"), default="first-use")
    p.add_argument("--skip", type=int, default=0,
                   help="leave out the first SKIP targets (ids below it): a development set apart from the reported one")
    args = p.parse_args()
    sha = hashlib.sha1(Path(completion_context.__file__).read_bytes()).hexdigest()[:10]
    from llama_cpp import Llama

    vocab = Llama(model_path=str(resolve(None)), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=True))

    chosen = choose(args.work, args.n, args.cursor, args.targets)
    chosen = [t for t in chosen if t["id"] >= args.skip]
    targets = [t for t in chosen if not t["foreign"]]  # members of third-party objects: no definition to find
    engrams, windows = {}, {}
    hits = {arm: 0 for arm in ARMS}
    named = {arm: 0 for arm in ARMS}   # the needed name appears in a packed snippet (a use teaches it too)
    snippets_in = {arm: 0 for arm in ARMS}
    per_project: dict[str, dict] = {}
    by_kind: dict[str, list[int]] = {}   # "x.name" (after a dot) or "name": [engram hits, targets]
    missed: dict[str, list[int]] = {}    # arm -> ids of the targets it missed
    for t in targets:
        folder = args.work / "projects" / t["project"]
        if t["project"] not in engrams:
            engrams[t["project"]] = Engram.open(folder, cache_dir=args.work / "cache-hits")
            engrams[t["project"]].index_workspace()
            engrams[t["project"]].save()  # a second run loads the store
            windows[t["project"]] = Windows(folder)
        e = engrams[t["project"]]
        query = "\n".join(t["prefix"].split("\n")[-QUERY_LINES:])
        found = {
            "engram": [Snippet(h.path, h.start_line, h.end_line, h.text, h.priority)
                       for h in completion_hits(e, t["path"], t["prefix"], t["suffix"])],
            "similar": [Snippet(h.path, h.start_line, h.end_line, h.text)
                        for h in e.search(query, 7) if h.path != t["path"]][:3],
            "bm25": [Snippet(s["path"], s["start_line"], s["end_line"], s["text"])
                     for s in windows[t["project"]].snippets(t["path"], t["prefix"])],
        }
        row = per_project.setdefault(t["project"], {"n": 0} | {arm: 0 for arm in ARMS})
        row["n"] += 1
        for arm, snippets in found.items():
            _, cited = fim_prompt(t["prefix"], t["suffix"], snippets, path=t["path"], n_ctx=args.context_length,
                                  max_tokens=args.max_tokens, count=count, suffix_tokens=args.suffix_tokens)
            packed = [snippets[i] for i in cited]
            snippets_in[arm] += len(packed)
            hit = any(s.path == d["path"] and s.start_line <= d["start_line"] <= s.end_line
                      and first_line(folder, d) in s.text.split("\n") for s in packed for d in t["defined"])
            hits[arm] += hit
            named[arm] += any(re.search(rf"\b{re.escape(t['name'])}\b", s.text) for s in packed)
            row[arm] += hit
            missed.setdefault(arm, []).extend([] if hit else [t["id"]])
            if arm == "engram":
                kind = by_kind.setdefault("x.name" if re.search(rf"\.{t['name']}\b", t["target"]) else "name",
                                          [0, 0])
                kind[0] += hit
                kind[1] += 1
    n = len(targets)
    result = {"n": n, "left_out": {"n": len(chosen) - n, "ids": [t["id"] for t in chosen if t["foreign"]]},
              "skip": args.skip, "cursor": args.cursor, "targets": args.targets, "context_length": args.context_length, "max_tokens": args.max_tokens,
              "context_sha": sha,
              "engram_by_kind": {k: {"hits": h, "n": m, "rate": round(h / m, 4)} for k, (h, m) in by_kind.items()},
              "hit_rate": {arm: round(hits[arm] / n, 4) for arm in ARMS},
              "name_shown": {arm: round(named[arm] / n, 4) for arm in ARMS},
              "snippets_in_prompt": {arm: round(snippets_in[arm] / n, 2) for arm in ARMS},
              "per_project": per_project, "missed": missed}
    stem = f"completion_hits{'-' + args.tag if args.tag else ''}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1))
    lines = ["| context | definition among the packed snippets | needed name in a packed snippet | snippets in the "
             "prompt |", "|---|---|---|---|"]
    lines += [f"| {arm} | {result['hit_rate'][arm]} | {result['name_shown'][arm]} | "
              f"{result['snippets_in_prompt'][arm]} |" for arm in ARMS]
    lines += ["", f"n = {n} targets ({len(chosen) - n} more left out: members of third-party objects), context length {args.context_length} (the evaluation's), at most "
              f"{args.suffix_tokens} tokens after the cursor, packed by the "
              f"model's own tokenizer. Per project: " + ", ".join(
                  f"{p} {r['engram']}/{r['n']}" for p, r in per_project.items()) + " (engram hits / targets). "
              "Engram by target kind: " + ", ".join(f"{k} {v['hits']}/{v['n']}" for k, v in
                                                    result["engram_by_kind"].items()) +
              f". Completion context {sha} (SHA-1 of completion_context.py)."]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def first_line(folder: Path, span: dict) -> str:
    return (folder / span["path"]).read_text(encoding="utf-8", errors="replace").split("\n")[span["start_line"] - 1]


if __name__ == "__main__":
    raise SystemExit(main())
