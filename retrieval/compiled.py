"""The compiled kernels (numba, cached on disk, GIL released): the build kernels, and compiled twins of the query
kernels that take over once this module is loaded (see ``kernels``; a property test keeps the twins equal)."""

from __future__ import annotations

import numba
import numpy as np

from .vsa import BLOCK_LEN, BLOCKS, DIM


@numba.njit(cache=True, nogil=True)
def transpose(slots, feat_start, feat_len, feat_ids, feat_w, n_features):
    """Postings (feature -> slots, weights) of the given slots, as CSC arrays ``(ptr, post_slot, post_w)``."""
    counts = np.zeros(n_features + 1, np.int64)
    for s in slots:
        for p in range(feat_start[s], feat_start[s] + feat_len[s]):
            counts[feat_ids[p] + 1] += 1
    ptr = np.cumsum(counts)
    fill = ptr[:-1].copy()
    total = ptr[-1]
    post_slot = np.empty(total, np.int32)
    post_w = np.empty(total, np.int16)
    for s in slots:
        for p in range(feat_start[s], feat_start[s] + feat_len[s]):
            f = feat_ids[p]
            q = fill[f]
            post_slot[q] = s
            post_w[q] = feat_w[p]
            fill[f] = q + 1
    return ptr, post_slot, post_w


@numba.njit(cache=True, nogil=True)
def engram_norms(starts, lens, feat_ids, feat_w, hv, lexical_role, role, out_norm, out_lex):
    """Norms of chunk engrams (and of their lexical view), through one dense scratch vector reset after each."""
    scratch = np.zeros(DIM, np.int64)
    lex = np.zeros(DIM, np.int64)
    touched = np.empty(BLOCKS * 4096, np.int64)
    for c in range(len(starts)):
        n = 0
        for p in range(starts[c], starts[c] + lens[c]):
            f = feat_ids[p]
            w = feat_w[p]
            is_lex = lexical_role[role[f]]
            for blk in range(BLOCKS):
                d = blk * BLOCK_LEN + hv[f, blk]
                if scratch[d] == 0 and lex[d] == 0:
                    if n == len(touched):
                        grown = np.empty(2 * n, np.int64)
                        grown[:n] = touched
                        touched = grown
                    touched[n] = d
                    n += 1
                scratch[d] += w
                if is_lex:
                    lex[d] += w
        sq = 0.0
        sq_lex = 0.0
        for k in range(n):
            d = touched[k]
            sq += scratch[d] * scratch[d]
            sq_lex += lex[d] * lex[d]
            scratch[d] = 0
            lex[d] = 0
        out_norm[c] = np.sqrt(sq)
        out_lex[c] = np.sqrt(sq_lex) if sq_lex > 0 else np.sqrt(sq)


@numba.njit(cache=True, nogil=True, fastmath=True)
def bm25_postings(ptr, post_slot, post_w, in_base, qids, qw, length, avg, k1, b, scores):
    """Adds each query feature's BM25 term to the slots in its postings (stage 1: candidate generation)."""
    n_feat = len(ptr) - 1
    for j in range(len(qids)):
        f = qids[j]
        if f < 0 or f >= n_feat:
            continue
        w = qw[j]
        for p in range(ptr[f], ptr[f + 1]):
            s = post_slot[p]
            if in_base[s]:
                tf = post_w[p]
                scores[s] += w * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * length[s] / avg))


@numba.njit(cache=True, nogil=True, fastmath=True)
def bm25_slots(slots, feat_start, feat_len, feat_ids, feat_w, qdense, length, avg, k1, b, out):
    """BM25 of each slot over its own features; ``qdense[feature id]`` holds the query weights (0 elsewhere)."""
    for i in range(len(slots)):
        s = slots[i]
        norm = k1 * (1.0 - b + b * length[s] / avg)
        acc = 0.0
        for p in range(feat_start[s], feat_start[s] + feat_len[s]):
            f = feat_ids[p]
            if f < len(qdense):
                w = qdense[f]
                if w != 0.0:
                    tf = feat_w[p]
                    acc += w * tf * (k1 + 1.0) / (tf + norm)
        out[i] = acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def engram_dots(slots, feat_start, feat_len, feat_ids, feat_w, hv, lexical_role, role, lexical_only, qdim, out):
    """Dot product of a dense probe ``qdim`` (DIM,) with each slot's engram, without building the engram: the
    engram is the weighted bundle of its features' HVs, so the dot is the sum of weight x probe at each HV's slots.
    ``lexical_only`` restricts the engram to word and identifier features (natural-language queries)."""
    for i in range(len(slots)):
        s = slots[i]
        acc = 0.0
        for p in range(feat_start[s], feat_start[s] + feat_len[s]):
            f = feat_ids[p]
            if lexical_only and not lexical_role[role[f]]:
                continue
            t = 0.0
            for blk in range(BLOCKS):
                t += qdim[blk * BLOCK_LEN + hv[f, blk]]
            acc += feat_w[p] * t
        out[i] = acc


@numba.njit(cache=True, nogil=True)
def random_hvs(seeds):
    """``vsa.random_hvs`` compiled: seeds (n,) uint64 -> HVs (n, BLOCKS) int64, the same splitmix64 steps."""
    out = np.empty((len(seeds), BLOCKS), np.int64)
    for i in range(len(seeds)):
        x = seeds[i]
        for blk in range(BLOCKS):
            x = x + np.uint64(0x9E3779B97F4A7C15)
            z = x
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            out[i, blk] = np.int64(z % np.uint64(BLOCK_LEN))
            x = z
    return out


@numba.njit(cache=True, nogil=True)
def gather(slots, feat_start, feat_len, feat_ids, feat_w):
    """The slots' features, concatenated in slot order: ``(ids, weights)``. One pass with the GIL released (the
    numpy gather of a ~5M-entry arena held it for ~80 ms, stalling the server's event loop during a save)."""
    total = 0
    for s in slots:
        total += feat_len[s]
    ids = np.empty(total, feat_ids.dtype)
    w = np.empty(total, feat_w.dtype)
    q = 0
    for s in slots:
        for p in range(feat_start[s], feat_start[s] + feat_len[s]):
            ids[q] = feat_ids[p]
            w[q] = feat_w[p]
            q += 1
    return ids, w


@numba.njit(cache=True, nogil=True)
def word_features(slots, feat_start, feat_len, feat_ids, role):
    """Each slot's word features (role 0) as CSR arrays ``(ptr, ids)``, with the GIL released (for the semantic
    layer's refresh, which gathered them with ~5M-entry numpy temporaries while holding it)."""
    ptr = np.zeros(len(slots) + 1, np.int64)
    for i in range(len(slots)):
        s = slots[i]
        n = 0
        for p in range(feat_start[s], feat_start[s] + feat_len[s]):
            if role[feat_ids[p]] == 0:
                n += 1
        ptr[i + 1] = ptr[i] + n
    ids = np.empty(ptr[-1], np.int64)
    q = 0
    for s in slots:
        for p in range(feat_start[s], feat_start[s] + feat_len[s]):
            f = feat_ids[p]
            if role[f] == 0:
                ids[q] = f
                q += 1
    return ptr, ids


@numba.njit(cache=True, nogil=True)
def used_ids(ids, n_features):
    """The distinct ids among ``ids`` (all < n_features), ascending: a presence pass, no sort, GIL released."""
    present = np.zeros(n_features, np.bool_)
    for f in ids:
        present[f] = True
    return np.flatnonzero(present)


@numba.njit(cache=True, nogil=True)
def remap(ids, new_id):
    """``new_id[ids]`` with the GIL released (a gather over the whole arena)."""
    out = np.empty(len(ids), np.int32)
    for i in range(len(ids)):
        out[i] = new_id[ids[i]]
    return out
