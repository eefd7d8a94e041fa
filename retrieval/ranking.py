"""Two-stage search over the chunk table, fusing three channels (four for a question in words).

Stage 1 generates candidates from the postings of the query's strongest known features (BM25 terms, including the
words the semantic channel says mean the same; never scoring every chunk), plus the fresh slots written since the
postings were built. Stage 2 scores the candidates on the channels and blends them:

- lexical: exact BM25 over all the query's features (scaled by the best candidate's score);
- engram: the VSA cosine of the query's probe and the chunk's engram, computed from the feature HVs without
  materialising the engram (role-tagged structure: what wins queries in code);
- meaning: the cosine of the query's and the chunk's static word-vector meaning (``meaning``; what wins queries in
  words when the code says it differently);
- name (questions in words only): the share of the question's words that the unit's own name holds.

Queries in words and queries in code weigh the channels differently (``WORDS`` and ``CODE``, tuned on the dev sets
of ``bench/nl_eval``). A symbol query (``def NAME():`` and the line the name is used on: what hover asks) is about
its name: the name's features weigh ``SUBJECT_BOOST`` times more and hits far below the best are dropped, so the
citations are the name's definition and uses, not code that merely looks like the line (``bench/hover_citations``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import kernels, meaning_kernels
from .chunk_table import ChunkTable
from .encoder import idf, probe
from .features import query_features, split_identifier
from .semantic import TermSpace
from .vocabulary import FeatureTable, LEXICAL_ROLES

CANDIDATES = 150                  # stage 2 re-scores this many; 300 and 150 gave the same MRR@10 (bench/results/retrieval-candidates.json)
STAGE1_FEATURES = 64
BM25_K1 = 1.2
BM25_B = 0.75
# Measured on bench/hover_citations (simulated on its 320 hovers before shipping): with neither, 17% of symbols are
# used in fewer than 3 chunks, so the third citation could not contain them — precision 0.78, the definition cited
# for 92%; boost 10 and a cut at 0.3 of the best: precision 0.98 with 2.4 citations a hover, definition cited 97%.
SUBJECT_BOOST = 10.0
SUBJECT_CUT = 0.3
_SYMBOL_QUERY = re.compile(r"\Adef ([A-Za-z_$][\w$]*)\(\):\n[^\n]*\Z")


@dataclass(frozen=True)
class Blend:
    """Shares of each channel in the final score, and the weights of the expansion words added to the query:
    ``expansion`` for the meaning channel's neighbours, ``ri_expansion`` for the Random Indexing layer's."""

    lexical: float = 0.5
    engram: float = 0.5
    meaning: float = 0.0
    expansion: float = 0.0
    ri_expansion: float = 0.35
    name: float = 0.0


BEFORE = Blend()                                              # the ranking before the semantic channel
# Tuned on the dev sets with the code-search table (bench/results/nl_eval-sweep-cs-h1-nbr0.4.json: every blend in
# steps of 0.1 and four expansion settings; within 0.1% of the best mean ratio to bm25s over Python, JavaScript and
# TypeScript, the most even of the best, and one that keeps every channel). In words: the meaning channel leads and
# its neighbours join stage 1; the Random Indexing neighbours cost more than they give; the unit's own name covering
# the question's words (``name_cover``) adds 0.4 (dev NL->code 1.20 / 1.20 / 1.25x bm25s -> 1.23 / 1.25 / 1.36x,
# bench/results/nl_eval-dev.md). In code: exact role-tagged BM25 leads (a blend with more meaning was within 1%).
WORDS = Blend(lexical=0.4, engram=0.1, meaning=0.5, expansion=0.6, ri_expansion=0.0, name=0.4)
CODE = Blend(lexical=0.6, engram=0.3, meaning=0.1, expansion=0.0, ri_expansion=0.0)


_query_features = lru_cache(maxsize=256)(query_features)   # one tokenising per query, not four (read-only)


def subject(query: str) -> str | None:
    """The name a symbol query asks about (``def NAME():`` then one line), else None."""
    m = _SYMBOL_QUERY.match(query)
    return m.group(1) if m else None


def _dfs(features: FeatureTable, names: list[str]) -> list[int]:
    """Document frequencies of feature names (0: unknown), in one batched lookup."""
    ids = features.lookup_many(names)
    return np.where(ids >= 0, features.df[np.maximum(ids, 0)], 0).tolist() if names else []


def query_weights(query: str, features: FeatureTable, n_chunks: int, terms: TermSpace,
                  blend: Blend = BEFORE) -> dict[str, float]:
    """Each query feature's weight: IDF x log-scaled count x role boost, plus neighbours of the query's rarest words
    at reduced weights (Random Indexing's from the workspace, the meaning channel's from static vectors); a symbol
    query's own name (identifier and roles) weighs ``SUBJECT_BOOST`` times more."""
    counts = _query_features(query)
    n = max(1, n_chunks)
    weighted: dict[str, float] = {}
    for (f, c), df in zip(counts.items(), _dfs(features, list(counts))):
        weighted[f] = idf(df, n) * (1.0 + math.log(c)) * {"d": 1.5}.get(f[0], 1.0)
    name = subject(query)
    if name:
        for f in [f for f in weighted if f[0] in "idca" and f[2:] == name.lower()]:
            weighted[f] *= SUBJECT_BOOST
    strongest = sorted((f for f in weighted if f.startswith("t:")), key=lambda f: -weighted[f])[:4]
    sources = [(blend.ri_expansion, terms.neighbours), (blend.expansion, terms.meaning.neighbours)]
    added: list[tuple[str, float]] = []
    for share, neighbours in sources:
        if share <= 0:
            continue
        for f in strongest:
            added.extend(("t:" + word, share * sim) for word, sim in neighbours(f[2:]) if "t:" + word not in counts)
    for (g, scaled), df in zip(added, _dfs(features, [g for g, _ in added])):
        weighted[g] = max(weighted.get(g, 0.0), scaled * idf(df, n))
    return weighted


def is_natural(query: str) -> bool:
    """A query in words: all its features are words or identifiers (no code structure)."""
    return all(f.startswith(("t:", "i:")) for f in _query_features(query))


def search(table: ChunkTable, features: FeatureTable, terms: TermSpace, query: str, k: int,
           allowed: np.ndarray | None = None, blend: Blend | None = None) -> list[tuple[int, float]]:
    """Top-k ``(slot, score)``; ``allowed`` is a boolean mask over slots (scope); ``blend`` overrides the default
    (``WORDS`` or ``CODE`` by the query's kind). A symbol query keeps only hits scoring at least ``SUBJECT_CUT``
    of the best."""
    if table.alive == 0 or k <= 0:
        return []
    blend = blend or (WORDS if is_natural(query) else CODE)
    scored = channels(table, features, terms, query, k, allowed, blend)
    if scored is None:
        return []
    cand, lexical, engram, meaning = scored
    final = blend.lexical * lexical + blend.engram * engram + blend.meaning * meaning
    if blend.name:  # scores stay within [0, 1]: the shares are rescaled to sum to one
        final = (final + blend.name * name_cover(table, features, query, cand)) / (
            blend.lexical + blend.engram + blend.meaning + blend.name)
    floor = SUBJECT_CUT * float(final.max()) if subject(query) and len(final) else 0.0
    order = np.argsort(-final, kind="stable")[:k]
    return [(int(cand[i]), float(final[i])) for i in order if final[i] > 0 and final[i] >= floor]


def channels(table: ChunkTable, features: FeatureTable, terms: TermSpace, query: str, k: int,
             allowed: np.ndarray | None, blend: Blend
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Stage 1's candidates and, for each, the three channels' scores: (slots, lexical BM25 / best, engram cosine,
    meaning cosine). A channel whose share in ``blend`` is 0 is not computed (zeros). None: no candidate."""
    natural = is_natural(query)
    weights = query_weights(query, features, table.alive, terms, blend)
    ids = features.lookup_many(list(weights))
    ok = ids >= 0
    ok[ok] = features.df[ids[ok]] > 0
    if not ok.any():
        return None
    qids = ids[ok]                      # distinct names hash to distinct keys, so the ids are distinct
    qw = np.fromiter(weights.values(), np.float64, len(weights))[ok]
    avg = table.average_length()
    n = table.n_slots

    # Stage 1: candidates.
    strongest = np.argsort(-qw, kind="stable")[:STAGE1_FEATURES]
    scores = np.zeros(n, np.float64)
    kernels.bm25_postings(table.ptr, table.post_slot, table.post_w, table.in_base, qids[strongest], qw[strongest],
                          table.length, avg, BM25_K1, BM25_B, scores)
    if table.fresh:
        fresh = np.fromiter(table.fresh, np.int64, len(table.fresh))
        out = np.zeros(len(fresh), np.float64)
        with features.dense(qids[strongest], qw[strongest]) as stage1:
            kernels.bm25_slots(fresh, table.feat_start, table.feat_len, table.feat_ids, table.feat_w, stage1,
                               table.length, avg, BM25_K1, BM25_B, out)
        scores[fresh] = out
    live = table.live[:n] if allowed is None else table.live[:n] & allowed[:n]
    scores[~live] = 0.0
    positive = np.flatnonzero(scores > 0)
    if len(positive) == 0:
        return None
    c = min(len(positive), max(CANDIDATES, 4 * k))
    cand = positive[np.argpartition(-scores[positive], c - 1)[:c]] if len(positive) > c else positive

    # Stage 2: the three channels over the candidates.
    lexical = np.zeros(len(cand), np.float64)
    engram = np.zeros(len(cand), np.float64)
    meaning = np.zeros(len(cand), np.float64)
    if blend.lexical:
        with features.dense(qids, qw) as qdense:
            kernels.bm25_slots(cand, table.feat_start, table.feat_len, table.feat_ids, table.feat_w, qdense,
                               table.length, avg, BM25_K1, BM25_B, lexical)
        lexical /= lexical.max() or 1.0
    if blend.engram:
        qdim = probe(weights, features)
        kernels.engram_dots(cand, table.feat_start, table.feat_len, table.feat_ids, table.feat_w, features.hv,
                            LEXICAL_ROLES, features.role, natural, qdim, engram)
        qnorm = float(np.linalg.norm(qdim)) or 1.0
        cnorm = (table.lex_norm if natural else table.norm)[cand].astype(np.float64)
        cnorm[cnorm == 0] = 1.0
        engram /= qnorm * cnorm
    if blend.meaning:
        q = query_meaning(query, features, table.alive, terms)
        if q is not None:
            meaning = meaning_kernels.cosines(table, features, terms.meaning, q, cand, table.alive)
    return cand, lexical, engram, meaning


def name_cover(table: ChunkTable, features: FeatureTable, query: str, cand: np.ndarray) -> np.ndarray:
    """For each candidate, the share of the question's words (IDF-weighted) that its unit's own name holds: a
    question in words describes a function, and its name is the project's summary of what it does
    ("helper to match environment" and ``matchEnvironment`` among a class of ``matchX`` helpers)."""
    asked = question_words(query, features, table.alive)
    total = sum(asked.values())
    out = np.zeros(len(cand), np.float64)
    if total <= 0:
        return out
    symbols = table.symbols
    for j, slot in enumerate(cand.tolist()):
        out[j] = sum(asked.get(w, 0.0) for w in _name_words(symbols[slot]))
    return out / total


@lru_cache(maxsize=65_536)
def _name_words(symbol: str) -> frozenset[str]:
    """The words of a chunk's own name: ``Store.putMany`` -> put, many (its class is not its name)."""
    return frozenset(split_identifier(symbol.rpartition(".")[2]))


def question_words(query: str, features: FeatureTable, n_chunks: int) -> dict[str, float]:
    """The query's words (not stop words), each weighted by its workspace IDF: what the meaning channel sums."""
    n = max(1, n_chunks)
    names = [f for f in _query_features(query) if f.startswith("t:")]
    return {f[2:]: idf(df, n) for f, df in zip(names, _dfs(features, names))}


def query_meaning(query: str, features: FeatureTable, n_chunks: int, terms: TermSpace) -> np.ndarray | None:
    """The query's unit meaning vector: its ``question_words``' query vectors, summed."""
    return terms.meaning.query_vector(question_words(query, features, n_chunks))
