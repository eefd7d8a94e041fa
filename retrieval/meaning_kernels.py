"""Numba kernel of the semantic channel (see ``meaning``): chunk meaning cosines straight from the feature arena."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath=True)
def meaning_cosines(slots, feat_start, feat_len, feat_ids, feat_w, row, code, df, n_docs, q, out):
    """Cosine of the unit query meaning ``q`` (d,) with each slot's meaning: the sum over its word features f of
    weight x idf(f) x ``code[row[f]]`` (features without a row, or with ids past ``row``, are skipped).
    Cost: (features of a slot) x d per slot — it runs over stage-2 candidates only."""
    d = code.shape[1]
    v = np.zeros(d, np.float32)
    n_rows = len(row)
    for i in range(len(slots)):
        s = slots[i]
        v[:] = 0.0
        for p in range(feat_start[s], feat_start[s] + feat_len[s]):
            f = feat_ids[p]
            if f >= n_rows:
                continue
            r = row[f]
            if r < 0:
                continue
            dfv = df[f]
            idf = max(0.05, math.log(1.0 + (n_docs - dfv + 0.5) / (dfv + 0.5)))
            wt = np.float32(feat_w[p] * idf)
            for j in range(d):
                v[j] += wt * code[r, j]
        sq = 0.0
        dot = 0.0
        for j in range(d):
            sq += v[j] * v[j]
            dot += v[j] * q[j]
        out[i] = dot / math.sqrt(sq) if sq > 0 else 0.0


def cosines(table, features, space, q: np.ndarray, slots: np.ndarray, n_docs: int) -> np.ndarray:
    """``meaning_cosines`` over ``slots`` of a ChunkTable with a MeaningSpace; zeros when the space is empty."""
    out = np.zeros(len(slots), np.float64)
    if len(space.code) and len(slots):
        meaning_cosines(slots.astype(np.int64), table.feat_start, table.feat_len, table.feat_ids, table.feat_w,
                        space.row, space.code, features.df, float(n_docs), q.astype(np.float32), out)
    return out
