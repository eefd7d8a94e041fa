"""A candidate fourth channel for questions in words: late interaction over the static word vectors (MaxSim).

The meaning channel compares the query's summed word vectors with the chunk's: in a long chunk the words the
question is about drown in the rest. MaxSim scores each query word by its best match among the chunk's words
(cosine of their static vectors; the same word scores 1) and averages over the query words, weighted by idf — how
much of the question the chunk covers, whatever else it holds. ``floor`` discounts weak matches:
``max(0, (s - floor) / (1 - floor))``.

On the dev sets (NL -> code only; code queries keep their blend), from one computation of the channels per query:
MRR@10 (x bm25s) of MaxSim alone, the default, and the best blend of the four channels in steps of 0.1.

Run: ``python -m bench.nl_eval.maxsim [--languages python,...]``. Writes bench/results/nl_eval-maxsim.json/.md.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from bench.nl_eval.__main__ import K, OUT, _hits, _mrr, index
from bench.nl_eval.sets import build, run_dev
from bench.retrieval_bench import metrics, rank_of
from engram_ls.retrieval import kernels, ranking
from engram_ls.retrieval.encoder import idf
from engram_ls.retrieval.features import query_features

FLOORS = (0.0, 0.3, 0.5)
GRID4 = [(a / 10, b / 10, c / 10, round(1 - (a + b + c) / 10, 1))
         for a, b, c in itertools.product(range(11), repeat=3) if a + b + c <= 10]


def maxsim(engram, cand: np.ndarray, query: str, floors=FLOORS) -> dict[float, np.ndarray]:
    """MaxSim of the query's words over each candidate's word features, for each floor."""
    t, features, space = engram.table, engram.features, engram.terms.meaning
    n = max(1, t.alive)
    words, weights = [], []
    for f in query_features(query):
        if f.startswith("t:"):
            v = space.vectors.vector(f[2:]) if space.vectors is not None else None
            if v is not None:
                fid = features.lookup(f)
                words.append(v)
                weights.append(idf(int(features.df[fid]) if fid >= 0 else 0, n))
    out = {fl: np.zeros(len(cand)) for fl in floors}
    if not words or not len(space.code):
        return out
    q = np.asarray(words, np.float32)
    w = np.asarray(weights) / sum(weights)
    idx, owner = kernels._gather(t.feat_start[cand], t.feat_len[cand])
    f = t.feat_ids[idx].astype(np.int64)
    inside = f < len(space.row)
    rows = np.full(len(f), -1, np.int64)
    rows[inside] = space.row[f[inside]]
    keep = rows >= 0
    rows, owner = rows[keep], owner[keep]
    if not len(rows):
        return out
    sims = space.code[rows] @ q.T                                   # (chunk words, query words)
    best = np.full((len(cand), len(q)), -1.0, np.float32)
    np.maximum.at(best, owner, sims)
    best = np.clip(best, 0.0, 1.0)
    for fl in floors:
        out[fl] = (np.maximum(0.0, (best - fl) / (1.0 - fl)) @ w).astype(np.float64)
    return out


def run_language(language: str, work: Path) -> dict:
    root = work / language
    sets = build("dev", language, root)
    engram, bm25, _, _ = index(root, work / "cache" / language)
    t = engram.table
    items = sets["nl"]
    base = metrics([rank_of(bm25.search(f["query"], K), f) for f in items])["mrr@10"] or 1.0
    per_query = []
    for f in items:
        blend = ranking.WORDS if ranking.is_natural(f["query"]) else ranking.CODE
        scored = ranking.channels(t, engram.features, engram.terms, f["query"], K, None, blend)
        if scored is None:
            continue
        cand, lexical, vsa_cos, meaning = scored
        per_query.append((blend, lexical, vsa_cos, meaning, maxsim(engram, cand, f["query"]), _hits(engram, cand, f)))
    n = len(items)

    def mrr(score_of) -> float:
        return round(sum(_mrr(score_of(q), q[5]) for q in per_query) / n / base, 4)

    row = {"n": n, "bm25s_mrr@10": base,
           "default": mrr(lambda q: q[0].lexical * q[1] + q[0].engram * q[2] + q[0].meaning * q[3])}
    for fl in FLOORS:
        row[f"maxsim_alone_floor{fl}"] = mrr(lambda q: q[4][fl])
        scores = {g: mrr(lambda q: g[0] * q[1] + g[1] * q[2] + g[2] * q[3] + g[3] * q[4][fl]) for g in GRID4}
        row[f"grid_floor{fl}"] = {str(list(g)): v for g, v in scores.items()}
        best = max(scores, key=scores.get)
        row[f"best_floor{fl}"] = {"blend": list(best), "x_bm25": scores[best]}
    print(language, json.dumps({k: v for k, v in row.items() if not k.startswith("grid")}), flush=True)
    return row


def best_mean(result: dict) -> dict:
    """Per floor, the four-channel blend with the best mean ratio over the languages; ``three``: the best without
    MaxSim in the same grid (every NL query given the word blend, so it differs a little from ``default``)."""
    out = {}
    langs = list(result["languages"].values())
    grids = [lang["grid_floor0.0"] for lang in langs]
    key = max((g for g in grids[0] if json.loads(g)[3] == 0), key=lambda g: sum(x[g] for x in grids))
    out["three"] = {"blend": key, "per_language": [float(x[key]) for x in grids]}
    for fl in FLOORS:
        grids = [lang[f"grid_floor{fl}"] for lang in langs]
        key = max(grids[0], key=lambda g: sum(x[g] for x in grids))
        out[str(fl)] = {"blend": key, "per_language": [float(x[key]) for x in grids]}
    return out


def markdown(result: dict) -> str:
    lines = ["# MaxSim over static word vectors as a fourth channel (dev NL -> code; MRR@10 as × bm25s)", "",
             f"Load: {result['load']}. Blends are [lexical, engram, meaning, maxsim].", "",
             "| language | n | default | " + " | ".join(f"MaxSim alone (floor {fl}) | best blend (floor {fl})"
                                                        for fl in FLOORS) + " |",
             "|---|---|---|" + "---|---|" * len(FLOORS)]
    for language, r in result["languages"].items():
        lines.append(f"| {language} | {r['n']} | {r['default']} | " + " | ".join(
            f"{r[f'maxsim_alone_floor{fl}']} | {r[f'best_floor{fl}']['x_bm25']} {r[f'best_floor{fl}']['blend']}"
            for fl in FLOORS) + " |")
    lines += ["", "Best blend by the mean over languages:", ""]
    lines += [f"- {'without MaxSim' if fl == 'three' else 'floor ' + fl}: {v['blend']} -> {v['per_language']}"
              for fl, v in result["best_mean"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    result = run_dev(run_language)
    result["best_mean"] = best_mean(result)
    (OUT / "nl_eval-maxsim.json").write_text(json.dumps(result, indent=1))
    (OUT / "nl_eval-maxsim.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
