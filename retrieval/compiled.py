"""The compiled build kernels (numba, cached on disk, GIL released): imported only when an index is built or
edited (see ``kernels``)."""

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
