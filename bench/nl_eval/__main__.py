"""Scores every retrieval arm on the same chunks: bm25s (with stop words), the ranking before the semantic channel,
each channel alone, and the fused default — per language, NL -> code and code -> code, with per-query loss rows.

Run: ``python -m bench.nl_eval [--split dev|heldout] [--sweep]``. Writes bench/results/nl_eval-<split>.json and
.md (``--sweep``: bench/results/nl_eval-sweep.json, blends tried on the dev split only). The held-out split uses
other packages (see ``sets.py``) and is run once, after tuning.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.nl_eval.sets import SETS, build
from bench.retrieval_bench import BM25, chunk_spans, code_tokens, metrics, rank_of
from engram_ls.retrieval import Engram, ranking
from engram_ls.retrieval.meaning_kernels import cosines
from engram_ls.retrieval.ranking import Blend

OUT = Path(__file__).resolve().parents[1] / "results"
K = 10


class StopBM25(BM25):
    """bm25s over the code-aware tokens, less bm25s's own English stop words as well as the project's."""

    def __init__(self, chunks, texts):
        from bm25s.stopwords import STOPWORDS_EN

        self.stop = frozenset(STOPWORDS_EN)
        super().__init__(chunks, [" ".join(t for t in code_tokens(x) if t not in self.stop) for x in texts])

    def search(self, query, k):
        return super().search(" ".join(t for t in code_tokens(query) if t not in self.stop), k)


def meaning_alone(engram: Engram, query: str, k: int) -> list[tuple[str, int, int]]:
    """The semantic channel over every live chunk (not just stage-1 candidates): what it finds on its own."""
    t = engram.table
    q = ranking.query_meaning(query, engram.features, t.alive, engram.terms)
    if q is None:
        return []
    slots = t.live_slots()
    cos = cosines(t, engram.features, engram.terms.meaning, q, slots, t.alive)
    top = slots[np.argsort(-cos, kind="stable")[:k]]
    return [(engram.doc_paths[t.doc[s]], int(t.start[s]), int(t.end[s])) for s in top.tolist()]


def blended(engram: Engram, blend: Blend | None):
    def run(query: str, k: int):
        t = engram.table
        hits = ranking.search(t, engram.features, engram.terms, query, k, None, blend)
        return [(engram.doc_paths[t.doc[s]], int(t.start[s]), int(t.end[s])) for s, _ in hits]
    return run


ARMS = {
    "before": Blend(),
    "lexical": Blend(lexical=1, engram=0, ri_expansion=0),
    "engram_cosine": Blend(lexical=0, engram=1, ri_expansion=0),
    "meaning_rerank": Blend(lexical=0, engram=0, meaning=1, expansion=0.3, ri_expansion=0),
    "name_rerank": Blend(lexical=0, engram=0, meaning=0, name=1, ri_expansion=0),
}


def index(root: Path, cache: Path) -> tuple[Engram, StopBM25, float, float]:
    started = time.perf_counter()
    engram = Engram.open(root, cache_dir=cache)
    engram.index_workspace()
    engram_s = time.perf_counter() - started
    spans = chunk_spans(engram)
    chunks, texts = [], []
    for path, pairs in spans.items():
        lines = engram.document_text(path).replace("\r\n", "\n").split("\n")
        for a, b in pairs:
            chunks.append((path, a, b))
            texts.append("\n".join(lines[a - 1:b]))
    bm25 = StopBM25(chunks, texts)
    return engram, bm25, engram_s, bm25.build_seconds


def gold_lines(engram: Engram, target: dict) -> int | None:
    for c in engram.chunks(target["path"]):
        if c.start_line <= target["line"] <= c.end_line:
            return c.end_line - c.start_line + 1
    return None


def run_arms(engram, bm25, items, arms) -> tuple[dict, list]:
    ranks = {name: [] for name in arms}
    ms = {name: [] for name in arms}
    rows = []
    for f in items:
        row = {"query": f["query"][:200], "path": f["path"], "line": f["line"], "gold_lines": gold_lines(engram, f)}
        for name, fn in arms.items():
            t = time.perf_counter()
            got = fn(f["query"], K)
            ms[name].append((time.perf_counter() - t) * 1000)
            r = rank_of(got, f)
            ranks[name].append(r)
            row[name] = r
        rows.append(row)
    out = {}
    for name in arms:
        out[name] = metrics(ranks[name])
        out[name]["query_ms_p50"] = round(statistics.median(ms[name]), 2)
    base = out["bm25s"]["mrr@10"] or 1.0
    for name in arms:
        out[name]["x_bm25"] = round(out[name]["mrr@10"] / base, 3)
    return out, rows


# The default for questions in words before the code-search table: the distilled vectors' tuned blend and floor.
DISTILLED_WORDS = Blend(lexical=0.2, engram=0.3, meaning=0.5, expansion=0.3, ri_expansion=0.0)
DISTILLED_FLOOR = 0.6

QUICK = False   # --quick: only bm25s, the ranking before and the default (feature variants)


def arm_functions(engram, bm25) -> dict:
    arms = {"bm25s": bm25.search, "default": blended(engram, None), "before": blended(engram, ARMS["before"])}
    if not QUICK:
        arms.update({name: blended(engram, b) for name, b in ARMS.items()})
        arms["meaning_alone"] = lambda q, k: meaning_alone(engram, q, k)
    return arms


def evaluate(split: str, work: Path, languages: list[str]) -> dict:
    result = {"split": split, "k": K, "languages": {}}
    all_rows = []
    for language in languages:
        root = work / split / language
        sets = build(split, language, root)
        engram, bm25, engram_s, bm25_s = index(root, work / "cache" / split / language)
        arms = arm_functions(engram, bm25)
        lang = {"folders": sets["folders"], "versions": sets["versions"], "chunks": len(engram.table),
                "functions": sets["functions"],
                "build_s": {"engram": round(engram_s, 2), "bm25s_index": round(bm25_s, 2)},
                "meaning_words": len(engram.terms.meaning.words)}
        for task in ("nl", "code"):
            lang[task], rows = run_arms(engram, bm25, sets[task], arms)
            all_rows.extend(dict(r, language=language, task=task) for r in rows)
        result["languages"][language] = lang
        print(language, json.dumps({t: {a: m["x_bm25"] for a, m in lang[t].items()} for t in ("nl", "code")}),
              flush=True)
    result["losses"] = loss_analysis(all_rows)
    result["rows"] = all_rows
    return result


def loss_analysis(rows: list[dict]) -> dict:
    """Hit@10 of bm25s, the ranking before and the default, by the gold chunk's size, and per-query win/loss."""
    out = {}
    buckets = [(1, 5), (6, 15), (16, 40), (41, 1000)]
    for task in ("nl", "code"):
        sel = [r for r in rows if r["task"] == task]
        by = {}
        for lo, hi in buckets:
            b = [r for r in sel if r["gold_lines"] and lo <= r["gold_lines"] <= hi]
            if b:
                by[f"{lo}-{hi}"] = {"n": len(b), **{a: round(sum(1 for r in b if r[a] and r[a] <= K) / len(b), 3)
                                                     for a in ("bm25s", "before", "default", "meaning_alone")
                                                     if a in b[0]}}
        wins = {a: {"better": sum(1 for r in sel if (r[a] or 99) < (r["bm25s"] or 99)),
                    "worse": sum(1 for r in sel if (r[a] or 99) > (r["bm25s"] or 99))}
                for a in ("before", "default")}
        out[task] = {"hit@10_by_gold_lines": by, "vs_bm25s": wins}
    return out


EXPANSIONS = {"nl": ((0.0, 0.35), (0.0, 0.0), (0.3, 0.0), (0.6, 0.0)), "code": ((0.0, 0.35), (0.0, 0.0))}
GRID = [(lx / 10, en / 10, round(1 - lx / 10 - en / 10, 1)) for lx in range(11) for en in range(11 - lx)]


def _hits(engram, cand, target) -> np.ndarray:
    t = engram.table
    return np.array([engram.doc_paths[t.doc[s]] == target["path"] and t.start[s] <= target["line"] <= t.end[s]
                     for s in cand.tolist()], bool)


def _mrr(final: np.ndarray, hits: np.ndarray) -> float:
    top = np.argsort(-final, kind="stable")[:K]
    found = np.flatnonzero(hits[top] & (final[top] > 0))
    return 1.0 / (found[0] + 1) if len(found) else 0.0


def sweep(work: Path, languages: list[str]) -> dict:
    """Every blend of the three channels (steps of 0.1) and a few expansion settings, from one computation of the
    channels per query and setting; plus reciprocal rank fusion of the three. Dev split only."""
    out = []
    for language in languages:
        root = work / "dev" / language
        sets = build("dev", language, root)
        engram, bm25, _, _ = index(root, work / "cache" / language)
        t = engram.table
        for task in ("nl", "code"):
            base = metrics([rank_of(bm25.search(f["query"], K), f) for f in sets[task]])["mrr@10"] or 1.0
            for ex, ri in EXPANSIONS[task]:
                full = Blend(lexical=1, engram=1, meaning=1, expansion=ex, ri_expansion=ri)
                per_query = []
                for f in sets[task]:
                    scored = ranking.channels(t, engram.features, engram.terms, f["query"], K, None, full)
                    if scored is not None:
                        per_query.append((scored[1:], _hits(engram, scored[0], f)))
                n = len(sets[task])
                for lx, en, me in GRID:
                    mrr = sum(_mrr(lx * a + en * b + me * c, h) for (a, b, c), h in per_query) / n
                    out.append({"language": language, "task": task, "expansion": ex, "ri_expansion": ri,
                                "blend": [lx, en, me], "x_bm25": round(mrr / base, 4)})
                rrf = 0.0
                for channels_, h in per_query:
                    score = sum(1.0 / (60 + np.argsort(np.argsort(-c, kind="stable"))) for c in channels_)
                    rrf += _mrr(score, h)
                out.append({"language": language, "task": task, "expansion": ex, "ri_expansion": ri,
                            "blend": "rrf", "x_bm25": round(rrf / n / base, 4)})
                print(language, task, ex, ri, max(r["x_bm25"] for r in out[-len(GRID) - 1:]), flush=True)
    return {"rows": out, "best": best_blends(out)}


def best_blends(rows: list[dict]) -> dict:
    """Per task, the setting with the best mean ratio over the languages (ties: the earlier)."""
    best = {}
    for task in ("nl", "code"):
        groups: dict = {}
        for r in rows:
            if r["task"] == task:
                groups.setdefault((r["expansion"], r["ri_expansion"], str(r["blend"])), []).append(r["x_bm25"])
        key, ratios = max(groups.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
        best[task] = {"expansion": key[0], "ri_expansion": key[1], "blend": key[2],
                      "mean_x_bm25": round(sum(ratios) / len(ratios), 4), "per_language": ratios}
    return best


def markdown(result: dict) -> str:
    arms = [a for a in ("bm25s", "before", "lexical", "engram_cosine", "meaning_alone", "meaning_rerank",
                        "name_rerank", "default")
            if a in next(iter(result["languages"].values()))["nl"]]
    lines = [f"# nl_eval — {result['split']} split (MRR@10; × = ratio to bm25s in the same run)", "",
             "| language | task | n | " + " | ".join(arms) + " | query ms p50 (bm25s / default) |",
             "|---|---|---|" + "---|" * len(arms) + "---|"]
    for language, lang in result["languages"].items():
        for task in ("nl", "code"):
            m = lang[task]
            lines.append(f"| {language} | {task} | {m['bm25s']['n']} | " +
                         " | ".join(f"{m[a]['mrr@10']:.3f} ({m[a]['x_bm25']:.2f}×)" for a in arms) +
                         f" | {m['bm25s']['query_ms_p50']} / {m['default']['query_ms_p50']} |")
    lines += ["", "Build (s, measured under load): " + ", ".join(
        f"{l}: engram {v['build_s']['engram']}, bm25s index {v['build_s']['bm25s_index']} ({v['chunks']} chunks)"
        for l, v in result["languages"].items()), "", "Hit@10 by the gold chunk's size (lines):", ""]
    for task, a in result["losses"].items():
        for bucket, v in a["hit@10_by_gold_lines"].items():
            lines.append(f"- {task} {bucket} (n={v['n']}): " + ", ".join(f"{k} {v[k]}" for k in v if k != "n"))
        lines.append(f"- {task} per query vs bm25s: " + ", ".join(f"{k} better {v['better']} / worse {v['worse']}"
                                                                 for k, v in a["vs_bm25s"].items()))
    return "\n".join(lines) + "\n"


def _encode_with_context(self, path, doc, lines, spans, has_pem, texts=None, counted=None):
    """Engram._encode_spans, with each chunk's enclosing definitions' names added to its words (the engine hook
    this variant measures: one extra argument per chunk). Counts made without the context are not used."""
    from engram_ls.retrieval.chunking import digest_int
    from engram_ls.retrieval.encoder import encode_chunks
    from engram_ls.retrieval.engram import _redacted_texts
    from engram_ls.retrieval.features import context_words, path_words

    texts = texts if texts is not None else _redacted_texts(lines, spans, has_pem)
    base = path_words(path)
    slots = []
    for (start, end, kind, symbol), text in zip(spans, texts):
        ids, w, n, ln = (x[0] for x in encode_chunks(self.features, [text], base + context_words(lines, start)))
        slots.append(self.table.add(doc.doc_id, start, end, kind, symbol, digest_int(text), ids, w, n, ln))
    self._changed_since_semantic += len(slots)
    return slots


def apply_variants(variants: list[str], vectors: Path | None) -> None:
    """Feature variants measured against the default: ``stem``, ``names`` (defined names' sub-tokens counted
    twice more), ``context`` (enclosing definitions' names); ``vectors``: another word-vector table."""
    from engram_ls.retrieval import features, meaning

    if "stem" in variants:
        features.STEM = True
    if "names" in variants:
        features.NAME_BOOST = 2
    if "keywords" in variants:
        features.KEYWORD_WORDS = True
    if "context" in variants:
        Engram._encode_spans = _encode_with_context
    if vectors is not None:
        meaning.DATA = vectors
        meaning.shipped.cache_clear()
    dims = [int(v[3:]) for v in variants if v.startswith("dim")]
    if dims:                    # the first N principal components only
        table = meaning.shipped()
        cut = meaning.WordVectors.__new__(meaning.WordVectors)
        cut.row, cut.dim, cut._cache, cut._query_cache = table.row, dims[0], {}, {}
        part = table.code[:][:, :dims[0]]
        cut.code = cut.query = (part / (np.linalg.norm(part, axis=1, keepdims=True) + 1e-9)).astype(np.float32)
        meaning.shipped = lambda: cut
    named = [0.0 if v == "noname" else float(v[4:]) for v in variants if re.fullmatch(r"noname|name\d+(\.\d+)?", v)]
    if named:                    # another weight of the name channel in words (noname: 0, the default before it)
        ranking.WORDS = dataclasses.replace(ranking.WORDS, name=named[0])
    if "distilled" in variants:  # the default before the code-search table: distilled vectors, its blend and floor
        meaning.DATA = meaning.DISTILLED
        meaning.shipped.cache_clear()
        meaning.NEIGHBOUR_SIMILARITY = DISTILLED_FLOOR
        ranking.WORDS = DISTILLED_WORDS
    near = [float(v[3:]) for v in variants if v.startswith("nbr")]
    if near:                    # the least cosine of a meaning-channel neighbour
        meaning.NEIGHBOUR_SIMILARITY = near[0]
    bits = [int(v[4:]) for v in variants if v.startswith("sign")]
    if bits:                    # random projection + sign: the vectors as bipolar hypervectors
        table = meaning.shipped()
        signed = table.bipolar(bits[0])
        meaning.shipped = lambda: signed
    features._IDENT_INFO.clear()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="dev", choices=sorted(SETS))
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--variant", default="", help="comma-separated: stem, names, keywords, context, signN, dimN, "
                    "nbrX, distilled, noname, nameX")
    ap.add_argument("--vectors", type=Path, help="another word-vector table (.npz) for the semantic channel")
    ap.add_argument("--tag", default="", help="suffix of the results files")
    ap.add_argument("--languages", default="", help="comma-separated languages (default: all)")
    ap.add_argument("--quick", action="store_true", help="only bm25s, the ranking before and the default")
    args = ap.parse_args()
    global QUICK
    QUICK = args.quick
    apply_variants([v for v in args.variant.split(",") if v], args.vectors)
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.sweep:
            result = sweep(Path(tmp), args.languages.split(",") if args.languages else list(SETS["dev"]))
            result["variant"] = args.variant
            name = f"nl_eval-sweep{'-' + args.tag if args.tag else ''}"
            (OUT / f"{name}.json").write_text(json.dumps(result, indent=1))
            print(json.dumps(result["best"], indent=1))
            return
        result = evaluate(args.split, Path(tmp), args.languages.split(",") if args.languages else list(SETS[args.split]))
    result["variant"], result["vectors"] = args.variant, str(args.vectors or "shipped")
    name = f"nl_eval-{args.split}{'-' + args.tag if args.tag else ''}"
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=1))
    (OUT / f"{name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
