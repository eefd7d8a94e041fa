"""Two-stage search over the chunk table.

Stage 1 generates candidates from the postings of the query's strongest known features (BM25 terms; never scoring
every chunk), plus the fresh slots written since the postings were built. Stage 2 reranks the candidates exactly:
BM25 over all the query's features blended with the engram cosine — the VSA similarity of the query's probe and
the chunk's engram, computed from the feature HVs without materialising the engram.
"""

from __future__ import annotations

import math

import numpy as np

from . import kernels
from .chunk_table import ChunkTable
from .encoder import idf, probe
from .features import query_features
from .semantic import TermSpace
from .vocabulary import FeatureTable, LEXICAL_ROLES

CANDIDATES = 300
STAGE1_FEATURES = 64
COSINE_MIX = 0.5      # share of the engram cosine in the final score (the rest: exact BM25 over features)
BM25_K1 = 1.2
BM25_B = 0.75
EXPANSION_WEIGHT = 0.35


def query_weights(query: str, features: FeatureTable, n_chunks: int, terms: TermSpace) -> dict[str, float]:
    """Each query feature's weight: IDF x log-scaled count x role boost, plus the semantic layer's neighbours of the
    query's rarest words at a reduced weight."""
    counts = query_features(query)
    n = max(1, n_chunks)
    df = features.df
    weighted: dict[str, float] = {}
    for f, c in counts.items():
        fid = features.lookup(f)
        weighted[f] = idf(int(df[fid]) if fid >= 0 else 0, n) * (1.0 + math.log(c)) * {"d": 1.5}.get(f[0], 1.0)
    strongest = sorted((f for f in weighted if f.startswith("t:")), key=lambda f: -weighted[f])[:4]
    for f in strongest:
        for word, sim in terms.neighbours(f[2:]):
            g = "t:" + word
            if g not in counts:
                fid = features.lookup(g)
                weighted[g] = max(weighted.get(g, 0.0), EXPANSION_WEIGHT * sim * idf(int(df[fid]) if fid >= 0 else 0, n))
    return weighted


def search(table: ChunkTable, features: FeatureTable, terms: TermSpace, query: str, k: int,
           allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
    """Top-k ``(slot, score)``; ``allowed`` is a boolean mask over slots (scope)."""
    if table.alive == 0 or k <= 0:
        return []
    weights = query_weights(query, features, table.alive, terms)
    known = {features.ids[f]: w for f, w in weights.items() if f in features.ids and features.df[features.ids[f]] > 0}
    if not known:
        return []
    natural = all(f.startswith(("t:", "i:")) for f in weights)
    qids = np.fromiter(known.keys(), np.int64, len(known))
    qw = np.fromiter(known.values(), np.float64, len(known))
    avg = table.average_length()
    n = table.n_slots

    # Stage 1: candidates.
    strongest = np.argsort(-qw, kind="stable")[:STAGE1_FEATURES]
    scores = np.zeros(n, np.float64)
    kernels.bm25_postings(table.ptr, table.post_slot, table.post_w, table.in_base, qids[strongest], qw[strongest],
                          table.length, avg, BM25_K1, BM25_B, scores)
    qdense = np.zeros(features.size, np.float64)
    qdense[qids] = qw
    if table.fresh:
        fresh = np.fromiter(table.fresh, np.int64, len(table.fresh))
        out = np.zeros(len(fresh), np.float64)
        stage1 = np.zeros(features.size, np.float64)
        stage1[qids[strongest]] = qw[strongest]
        kernels.bm25_slots(fresh, table.feat_start, table.feat_len, table.feat_ids, table.feat_w, stage1,
                           table.length, avg, BM25_K1, BM25_B, out)
        scores[fresh] = out
    live = table.live[:n] if allowed is None else table.live[:n] & allowed[:n]
    scores[~live] = 0.0
    positive = np.flatnonzero(scores > 0)
    if len(positive) == 0:
        return []
    c = min(len(positive), max(CANDIDATES, 4 * k))
    cand = positive[np.argpartition(-scores[positive], c - 1)[:c]] if len(positive) > c else positive

    # Stage 2: exact BM25 over every query feature, blended with the engram cosine.
    bm = np.zeros(len(cand), np.float64)
    kernels.bm25_slots(cand, table.feat_start, table.feat_len, table.feat_ids, table.feat_w, qdense, table.length,
                       avg, BM25_K1, BM25_B, bm)
    qdim = probe(weights, features)
    dots = np.zeros(len(cand), np.float64)
    kernels.engram_dots(cand, table.feat_start, table.feat_len, table.feat_ids, table.feat_w, features.hv,
                        LEXICAL_ROLES, features.role, natural, qdim, dots)
    qnorm = float(np.linalg.norm(qdim)) or 1.0
    cnorm = (table.lex_norm if natural else table.norm)[cand].astype(np.float64)
    cnorm[cnorm == 0] = 1.0
    cos = dots / (qnorm * cnorm)
    top = bm.max() or 1.0
    final = (1 - COSINE_MIX) * bm / top + COSINE_MIX * cos
    order = np.argsort(-final, kind="stable")[:k]
    return [(int(cand[i]), float(final[i])) for i in order if final[i] > 0]
