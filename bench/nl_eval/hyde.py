"""Generation-augmented retrieval (HyDE-style): the shipped coding model writes the code a question describes, and
that code is searched code -> code, where the engrams beat bm25s by 1.1-3x. Measured against bm25s, the fused
default and bm25s given the same generated code, on the same chunks and questions as ``bench.nl_eval``.

Run: ``python -m bench.nl_eval.hyde [--split dev] [--n 60] [--languages python,javascript,typescript]``. Writes
bench/results/nl_eval-hyde-<split>.json and .md. Generations are cached by question under the work folder, so a
re-run only re-scores. The cost reported is the model's time per question on this machine (greedy, ``MAX_TOKENS``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.nl_eval.__main__ import OUT, K, blended, index
from bench.nl_eval.sets import build
from bench.retrieval_bench import metrics, rank_of

MAX_TOKENS = 96
POOL = 50     # hits taken from each ranking before fusing
RRF_K = 60
LANGUAGE_NAMES = {"python": "Python", "javascript": "JavaScript", "typescript": "TypeScript"}
_FENCE = re.compile(r"```[\w+-]*\n?")


def hypothetical_messages(question: str, language: str) -> list[dict]:
    """Ask for the code, not about it: a function whose names and calls the workspace's own code would share."""
    name = LANGUAGE_NAMES[language]
    return [{"role": "system", "content": f"You write {name} code. Reply with code only, no explanation."},
            {"role": "user", "content": f"Write a short {name} function that does this:\n{question}"}]


def strip_fences(text: str) -> str:
    return _FENCE.sub("", text).strip()


class Writer:
    """The shipped 0.5B coding model in this process, greedy, with its answers cached by question."""

    def __init__(self, cache: Path, threads: int):
        from engram_ls.inference.backends import LlamaBackend
        from engram_ls.inference.models import model_path

        self.backend = LlamaBackend(str(model_path("qwen2.5-coder-0.5b-instruct")), n_ctx=1024, threads=threads,
                                    cache_mb=0)
        self.cache_path = cache
        self.cache = {}
        if cache.exists():
            for line in cache.read_text().splitlines():
                row = json.loads(line)
                self.cache[row["key"]] = row

    def write(self, question: str, language: str) -> dict:
        key = f"{language}\0{question}"
        if key not in self.cache:
            started = time.perf_counter()
            text = "".join(self.backend.stream_chat(hypothetical_messages(question, language), MAX_TOKENS, 0.0,
                                                    [], lambda: False))
            row = {"key": key, "code": strip_fences(text), "seconds": round(time.perf_counter() - started, 3)}
            self.cache[key] = row
            with self.cache_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        return self.cache[key]


def rrf(*rankings: list, weights: tuple[float, ...] | None = None) -> list:
    """Reciprocal rank fusion of hit lists (file, start, end)."""
    weights = weights or (1.0,) * len(rankings)
    score: dict = {}
    for w, hits in zip(weights, rankings):
        for r, hit in enumerate(hits):
            score[hit] = score.get(hit, 0.0) + w / (RRF_K + r + 1)
    return sorted(score, key=lambda h: -score[h])


def arms(engram, bm25):
    default = blended(engram, None)

    def run(question: str, code: str) -> dict[str, list]:
        code = code or question  # the model wrote nothing: its arms fall back to the question, and count as such
        q_default, c_default = default(question, POOL), default(code, POOL)
        q_bm25, c_bm25 = bm25.search(question, POOL), bm25.search(code, POOL)
        return {
            "bm25s": q_bm25[:K],
            "default": q_default[:K],
            "bm25s_code": c_bm25[:K],
            "bm25s_question+code": bm25.search(question + "\n" + code, K),
            "bm25s_rrf": rrf(q_bm25, c_bm25)[:K],
            "engram_code": c_default[:K],
            "engram_question+code": default(question + "\n" + code, K),
            "engram_rrf": rrf(q_default, c_default)[:K],
            "engram_rrf_2:1": rrf(q_default, c_default, weights=(2.0, 1.0))[:K],
        }
    return run


def evaluate(split: str, work: Path, languages: list[str], n: int, threads: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    writer = Writer(work / f"generations-{split}.jsonl", threads)
    result = {"split": split, "k": K, "n_per_language": n, "max_tokens": MAX_TOKENS, "languages": {}, "rows": []}
    for language in languages:
        root = work / split / language
        sets = build(split, language, root)
        engram, bm25, _, _ = index(root, work / "cache" / split / language)
        run = arms(engram, bm25)
        ranks: dict[str, list] = {}
        seconds = []
        for f in sets["nl"][:n]:
            gen = writer.write(f["query"], language)
            seconds.append(gen["seconds"])
            row = {"language": language, "query": f["query"][:200], "code": gen["code"][:400]}
            for arm, hits in run(f["query"], gen["code"]).items():
                r = rank_of(hits, f)
                ranks.setdefault(arm, []).append(r)
                row[arm] = r
            result["rows"].append(row)
        lang = {name: metrics(rs) for name, rs in ranks.items()}
        base = lang["bm25s"]["mrr@10"] or 1.0
        for m in lang.values():
            m["x_bm25"] = round(m["mrr@10"] / base, 3)
        lang["generation_s"] = {"p50": round(statistics.median(seconds), 2), "max": round(max(seconds), 2)}
        result["languages"][language] = lang
        print(language, json.dumps({a: m["x_bm25"] for a, m in lang.items() if "x_bm25" in m}), flush=True)
    return result


def table(result: dict) -> str:
    langs = list(result["languages"])
    arm_names = [a for a in next(iter(result["languages"].values())) if a != "generation_s"]
    lines = [f"# Generation-augmented retrieval, {result['split']} split, first {result['n_per_language']} questions "
             f"per language (MRR@10, x bm25s)", "",
             "| arm | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
    for arm in arm_names:
        cells = [f"{result['languages'][lg][arm]['mrr@10']:.3f} ({result['languages'][lg][arm]['x_bm25']:.2f}x)"
                 for lg in langs]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines.append("| model seconds per question, p50 | " + " | ".join(
        f"{result['languages'][lg]['generation_s']['p50']:.2f}" for lg in langs) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--split", default="dev", choices=("dev", "heldout"))
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--languages", default="python,javascript,typescript")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "engram-nl-eval-hyde")
    a = p.parse_args()
    result = evaluate(a.split, a.work, a.languages.split(","), a.n, a.threads)
    OUT.mkdir(exist_ok=True)
    (OUT / f"nl_eval-hyde-{a.split}.json").write_text(json.dumps(result, indent=1))
    (OUT / f"nl_eval-hyde-{a.split}.md").write_text(table(result))
    print(table(result))


if __name__ == "__main__":
    main()
