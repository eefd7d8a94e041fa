"""What the hypervector code's noise costs: the engram channel's VSA cosine against exact feature-overlap scoring.

The engram channel scores a chunk by the cosine of the query's probe (its weighted features' hypervectors bundled)
and the chunk's engram (its weighted features' hypervectors bundled). Features are keyed by 64-bit hashes, so two
names almost never share a feature any more; but each hypervector is a random sparse code (8 blocks of 2,048), so
two different features still share a slot in a block now and then, and every such chance overlap adds to the dot
product and to the norms. The exact counterpart is the same cosine over the feature vectors themselves (weights as
given, no hypervectors): what the engram channel would be with perfectly orthogonal codes.

On the dev sets, per language and task, from one computation of the channels per query (stage-1 candidates of the
default blend for the query's kind): MRR@10 of each channel alone and of the fused default with either engram
score, plus the best blend of the three channels in steps of 0.1 with either one, and how the two scores agree.

Run: ``python -m bench.nl_eval.exact [--languages python,...]``. Writes bench/results/nl_eval-exact.json/.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.nl_eval.__main__ import GRID, K, OUT, _hits, _mrr, index
from bench.nl_eval.sets import build, run_dev
from bench.retrieval_bench import metrics, rank_of
from engram_ls.retrieval import kernels, ranking
from engram_ls.retrieval.vocabulary import LEXICAL_ROLES


def exact_cosines(engram, cand: np.ndarray, weights: dict[str, float], natural: bool) -> np.ndarray:
    """The cosine of the query's and each candidate's weighted feature vectors (lexical features only for a query in
    words, as the engram channel does): the engram channel with orthogonal codes."""
    t, features = engram.table, engram.features
    names = list(weights)
    w = np.fromiter(weights.values(), np.float64, len(names))
    ids = features.lookup_many(names)
    qdense = np.zeros(features.size, np.float64)
    qdense[ids[ids >= 0]] = w[ids >= 0]
    idx, owner = kernels._gather(t.feat_start[cand], t.feat_len[cand])
    f = t.feat_ids[idx].astype(np.int64)
    cw = t.feat_w[idx].astype(np.float64)
    if natural:
        keep = LEXICAL_ROLES[features.role[f]]
        f, cw, owner = f[keep], cw[keep], owner[keep]
    dot = np.bincount(owner, weights=cw * qdense[f], minlength=len(cand))
    norm = np.sqrt(np.bincount(owner, weights=cw * cw, minlength=len(cand)))
    norm[norm == 0] = 1.0
    return dot / (norm * (float(np.linalg.norm(w)) or 1.0))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def run_language(language: str, work: Path) -> dict:
    root = work / language
    sets = build("dev", language, root)
    engram, bm25, _, _ = index(root, work / "cache" / language)
    t = engram.table
    out = {"chunks": len(t)}
    for task in ("nl", "code"):
        base = metrics([rank_of(bm25.search(f["query"], K), f) for f in sets[task]])["mrr@10"] or 1.0
        per_query, agree, noise = [], [], []
        for f in sets[task]:
            natural = ranking.is_natural(f["query"])
            blend = ranking.WORDS if natural else ranking.CODE
            scored = ranking.channels(t, engram.features, engram.terms, f["query"], K, None, blend)
            if scored is None:
                continue
            cand, lexical, vsa_cos, meaning = scored
            weights = ranking.query_weights(f["query"], engram.features, t.alive, engram.terms, blend)
            exact = exact_cosines(engram, cand, weights, natural)
            per_query.append((blend, lexical, vsa_cos, exact, meaning, _hits(engram, cand, f)))
            agree.append(spearman(vsa_cos, exact))
            noise.append(float(np.mean(np.abs(vsa_cos - exact))))
        n = len(sets[task])

        def mrr(score_of) -> float:
            return round(sum(_mrr(score_of(q), q[5]) for q in per_query) / n / base, 4)

        row = {"n": n, "bm25s_mrr@10": base,
               "vsa_alone": mrr(lambda q: q[2]), "exact_alone": mrr(lambda q: q[3]),
               "default_vsa": mrr(lambda q: q[0].lexical * q[1] + q[0].engram * q[2] + q[0].meaning * q[4]),
               "default_exact": mrr(lambda q: q[0].lexical * q[1] + q[0].engram * q[3] + q[0].meaning * q[4]),
               "spearman_vsa_exact_median": round(float(np.nanmedian(agree)), 4),
               "mean_abs_cosine_difference": round(float(np.mean(noise)), 5)}
        for label, col in (("vsa", 2), ("exact", 3)):
            best = max(GRID, key=lambda g: mrr(lambda q: g[0] * q[1] + g[1] * q[col] + g[2] * q[4]))
            row[f"best_blend_{label}"] = {"blend": list(best),
                                          "x_bm25": mrr(lambda q: best[0] * q[1] + best[1] * q[col] + best[2] * q[4])}
        out[task] = row
        print(language, task, json.dumps(row), flush=True)
    return out


def markdown(result: dict) -> str:
    lines = ["# Engram channel: VSA cosine vs exact feature overlap (dev sets; MRR@10 as × bm25s, same run)", "",
             f"Load: {result['load']}", "",
             "| language | task | n | VSA alone | exact alone | default (VSA) | default with exact | best blend VSA | "
             "best blend exact | Spearman VSA~exact (median per query) | mean abs cosine diff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for language, lang in result["languages"].items():
        for task in ("nl", "code"):
            r = lang[task]
            lines.append(f"| {language} | {task} | {r['n']} | {r['vsa_alone']} | {r['exact_alone']} | "
                         f"{r['default_vsa']} | {r['default_exact']} | {r['best_blend_vsa']['x_bm25']} "
                         f"{r['best_blend_vsa']['blend']} | {r['best_blend_exact']['x_bm25']} "
                         f"{r['best_blend_exact']['blend']} | {r['spearman_vsa_exact_median']} | "
                         f"{r['mean_abs_cosine_difference']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    result = run_dev(run_language)
    (OUT / "nl_eval-exact.json").write_text(json.dumps(result, indent=1))
    (OUT / "nl_eval-exact.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
