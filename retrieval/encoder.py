"""Turns features into engrams (sparse integer hypervectors) and queries into weighted probes.

A chunk's engram is the bundle of its features' hypervectors with small integer weights (capped counts times a role
weight), so it depends on nothing but the chunk: edits re-encode only what they touch and aggregates stay exact.
Corpus statistics (IDF) weight the query side instead, as BM25 does.
"""

from __future__ import annotations

import math
from collections import Counter

import numba
import numpy as np

from . import vsa

ROLE_WEIGHT = {"t": 1, "i": 2, "d": 3, "c": 1, "a": 1, "m": 2, "o": 1}
MAX_COUNT = 4


class Vocabulary:
    """Feature strings <-> dense ids, with each feature's hypervector cached as its active dimensions."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self._dims: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.names)

    def id_of(self, feature: str) -> int:
        fid = self.ids.get(feature)
        if fid is None:
            fid = len(self.names)
            self.ids[feature] = fid
            self.names.append(feature)
            self._dims.append(vsa.active_dims(hypervector(feature)))
        return fid

    def extend(self, names: list[str]) -> None:
        """Adds many features at once (store loading): HVs computed in bulk, identical to ``id_of``'s."""
        names = [n for n in dict.fromkeys(names) if n not in self.ids]
        if not names:
            return
        pairs = [i for i, n in enumerate(names) if n.startswith("o:")]
        plain = [i for i, n in enumerate(names) if not n.startswith("o:")]
        hvs = np.empty((len(names), vsa.BLOCKS), np.int64)
        if plain:
            hvs[plain] = vsa.random_hvs(np.array([vsa.seed_of(names[i]) for i in plain], np.uint64))
        if pairs:
            firsts, seconds = zip(*(names[i][2:].partition(" ")[::2] for i in pairs))
            a = vsa.random_hvs(np.array([vsa.seed_of("t:" + w) for w in firsts], np.uint64))
            b = vsa.random_hvs(np.array([vsa.seed_of("t:" + w) for w in seconds], np.uint64))
            hvs[pairs] = ((np.roll(a, 1, axis=1) + 1) % vsa.BLOCK_LEN + b) % vsa.BLOCK_LEN
        dims = hvs + np.arange(vsa.BLOCKS, dtype=np.int64) * vsa.BLOCK_LEN
        for n, d in zip(names, dims):
            self.ids[n] = len(self.names)
            self.names.append(n)
            self._dims.append(d)

    def dims_of(self, fid: int) -> np.ndarray:
        return self._dims[fid]


def hypervector(feature: str) -> np.ndarray:
    """A feature's HV. Ordered pairs ``o:a b`` are ``bind(permute(hv(a)), hv(b))`` of their words' HVs."""
    if feature.startswith("o:"):
        first, _, second = feature[2:].partition(" ")
        return vsa.bind(vsa.permute(vsa.symbol_hv("t:" + first), 1), vsa.symbol_hv("t:" + second))
    return vsa.symbol_hv(feature)


def chunk_weights(counts: Counter, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Feature ids (int32) and integer weights (int16) of a chunk."""
    vocab.extend([f for f in counts if f not in vocab.ids])  # new features' HVs in one vectorised batch
    known = vocab.ids
    ids = np.fromiter((known[f] for f in counts), dtype=np.int32, count=len(counts))
    weights = np.fromiter(
        (min(n, MAX_COUNT) * ROLE_WEIGHT.get(f[0], 1) for f, n in counts.items()), dtype=np.int16, count=len(counts)
    )
    return ids, weights


def encode(ids: np.ndarray, weights: np.ndarray, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """The engram of a chunk: the bundle of its features' HVs -> sparse ``(dims int32, values int32)``."""
    if len(ids) == 0:
        return np.empty(0, np.int32), np.empty(0, np.int32)
    dims = np.concatenate([vocab.dims_of(int(i)) for i in ids])
    vals = np.repeat(weights.astype(np.int64), vsa.BLOCKS)
    return _reduce(dims.astype(np.int64), vals)


@numba.njit(cache=True)
def _reduce_sorted(dims, vals):
    n = len(dims)
    out_d = np.empty(n, np.int32)
    out_v = np.empty(n, np.int32)
    m = 0
    i = 0
    while i < n:
        d = dims[i]
        s = 0
        while i < n and dims[i] == d:
            s += vals[i]
            i += 1
        if s != 0:
            out_d[m] = d
            out_v[m] = s
            m += 1
    return out_d[:m], out_v[:m]


def _reduce(dims: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(dims, kind="stable")
    return _reduce_sorted(dims[order], vals[order])


LEXICAL = ("t:", "i:")


def norms(ids: np.ndarray, weights: np.ndarray, vals: np.ndarray, vocab: "Vocabulary") -> tuple[float, float]:
    """The engram's norm, and the norm of its lexical view (words and identifiers only): natural-language
    queries can only ever match that view, so role and order features should not dilute their scores."""
    full = float(np.linalg.norm(vals.astype(np.float64)))
    lexical = [i for i, fid in enumerate(ids) if vocab.names[int(fid)].startswith(LEXICAL)]
    if not lexical:
        return full, full
    _, lex_vals = encode(ids[lexical], weights[lexical], vocab)
    return full, float(np.linalg.norm(lex_vals.astype(np.float64)))


def idf(df: int, n_docs: int) -> float:
    """BM25's IDF, floored at a small positive value so common features still count a little."""
    return max(0.05, math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)))


def probe(weighted: dict[str, float], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """A query's probe vector: the float-weighted bundle of its features' HVs -> sparse ``(dims, float32 values)``.

    Features the workspace has never seen still get their HVs (they match nothing, but keep norms honest)."""
    if not weighted:
        return np.empty(0, np.int32), np.empty(0, np.float32)
    dims = np.concatenate([
        vsa.active_dims(hypervector(f)) if f not in vocab.ids else vocab.dims_of(vocab.ids[f]) for f in weighted
    ]).astype(np.int64)
    vals = np.repeat(np.fromiter(weighted.values(), dtype=np.float64, count=len(weighted)), vsa.BLOCKS)
    order = np.argsort(dims, kind="stable")
    dims, vals = dims[order], vals[order]
    uniq, start = np.unique(dims, return_index=True)
    sums = np.add.reduceat(vals, start)
    return uniq.astype(np.int32), sums.astype(np.float32)


@numba.njit(cache=True, nogil=True)
def accumulate_postings(indptr, rows, vals, qdims, qvals, scores):
    """Adds ``q[d] * engram[row][d]`` for every posting of the query's dimensions (candidate generation)."""
    for j in range(len(qdims)):
        d = qdims[j]
        w = qvals[j]
        for p in range(indptr[d], indptr[d + 1]):
            scores[rows[p]] += w * vals[p]


@numba.njit(cache=True, nogil=True)
def sparse_dots(qdense, flat_dims, flat_vals, offsets, out):
    """Exact dot products of a dense query with sparse engrams stored back to back (rerank)."""
    for i in range(len(offsets) - 1):
        s = 0.0
        for p in range(offsets[i], offsets[i + 1]):
            s += qdense[flat_dims[p]] * flat_vals[p]
        out[i] = s
