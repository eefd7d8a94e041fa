"""Turns chunk texts into feature ids and integer weights, and queries into weighted probes.

A chunk's engram is the bundle of its features' hypervectors with small integer weights (capped counts times a role
weight), so it depends on nothing but the chunk: edits re-encode only what they touch and aggregates stay exact.
Corpus statistics (IDF) weight the query side instead, as BM25 does.
"""

from __future__ import annotations

import math

import numpy as np

from . import kernels, vsa
from .features import code_features
from .vocabulary import LEXICAL_ROLES, ROLE_WEIGHT, FeatureTable, hypervectors

MAX_COUNT = 4


def count_features(texts: list[str], words: list[str]) -> list[dict[str, int]]:
    """Each chunk text's feature counts. Pure (it touches no table), so a background index runs it outside the
    engram's lock."""
    return [code_features(t, words=words) for t in texts]


def encode_chunks(features: FeatureTable, texts: list[str], words: list[str],
                  counted: list[dict[str, int]] | None = None
                  ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Feature ids (int32) and weights (int16) of each chunk text, and their engrams' norms (full, lexical);
    ``counted``: the texts' ``count_features`` when already computed.

    Interns every new feature in one batch and counts each chunk's features into the document frequencies."""
    if counted is None:
        counted = count_features(texts, words)
    all_ids = features.intern([f for c in counted for f in c])
    ids_list, w_list = [], []
    pos = 0
    for c in counted:
        ids = all_ids[pos:pos + len(c)]
        pos += len(c)
        counts = np.fromiter(c.values(), np.int64, len(c))
        w = (np.minimum(counts, MAX_COUNT) * ROLE_WEIGHT[features.role[ids]]).astype(np.int16)
        features.count(ids, +1)
        ids_list.append(ids)
        w_list.append(w)
    norm, lex = engram_norms(features, ids_list, w_list)
    return ids_list, w_list, norm, lex


def engram_norms(features: FeatureTable, ids_list: list[np.ndarray], w_list: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter((len(i) for i in ids_list), np.int64, len(ids_list))
    starts = np.zeros(len(lens), np.int64)
    if len(lens):
        np.cumsum(lens[:-1], out=starts[1:])
    flat_ids = np.concatenate(ids_list) if ids_list else np.zeros(0, np.int32)
    flat_w = np.concatenate(w_list) if w_list else np.zeros(0, np.int16)
    norm = np.zeros(len(lens), np.float64)
    lex = np.zeros(len(lens), np.float64)
    kernels.engram_norms(starts, lens, flat_ids, flat_w, features.hv, LEXICAL_ROLES, features.role, norm, lex)
    return norm, lex


def engram_of(features: FeatureTable, ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A chunk's engram as a sparse vector: ``bundle`` of its features' HVs with its weights."""
    return vsa.bundle(features.hv[ids], weights)


def idf(df: int, n_docs: int) -> float:
    """BM25's IDF, floored at a small positive value so common features still count a little."""
    return max(0.05, math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)))


def probe(weighted: dict[str, float], features: FeatureTable) -> np.ndarray:
    """A query's dense probe vector (DIM,) float32: the weighted bundle of its features' HVs. Features the
    workspace has never seen still get their HVs (they match nothing, but keep the norm honest)."""
    q = np.zeros(vsa.DIM, np.float32)
    if not weighted:
        return q
    names = list(weighted)
    ids = features.lookup_many(names)
    known = ids >= 0
    hvs = np.empty((len(names), vsa.BLOCKS), np.int64)
    hvs[known] = features.hv[ids[known]]
    if not known.all():
        hvs[~known] = hypervectors([n for n, k in zip(names, known.tolist()) if not k])
    dims = (hvs + np.arange(vsa.BLOCKS, dtype=np.int64) * vsa.BLOCK_LEN).ravel()
    np.add.at(q, dims, np.repeat(np.fromiter(weighted.values(), np.float32, len(names)), vsa.BLOCKS))
    return q
