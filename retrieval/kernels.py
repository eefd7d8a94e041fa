"""Loops over the columnar index: postings, scores, norms.

Every kernel takes the chunk table's flat arrays — a slot's features are ``feat_ids/feat_w[start:start+len]`` —
so search and encoding touch no Python object per chunk or per feature. The query path is vectorised numpy: it needs
no compile step, so a fresh process (the CLI, a restarted server) answers its first search as soon as the store is
read. The build path (postings transpose, engram norms) is compiled with numba in ``compiled``, imported on first use
(numba's import and first call cost about 1.5 s, paid by the first index, not by the first search). Once that module
is loaded (a server warms it in the background at start), the query kernels switch to its compiled twins, which are
several times faster on large candidate sets.
"""

from __future__ import annotations

import numpy as np

from . import vsa
from .vsa import BLOCK_LEN, BLOCKS


_compiled = None     # the ``compiled`` module once imported (build kernels)
_fast = None         # the same, once ``warm()`` has run every kernel: the query kernels then use its twins


def _load():
    global _compiled
    from . import compiled
    _compiled = compiled
    return compiled


def transpose(slots, feat_start, feat_len, feat_ids, feat_w, n_features):
    """Postings (feature -> slots, weights) of the given slots, as CSC arrays ``(ptr, post_slot, post_w)``."""
    return (_compiled or _load()).transpose(slots, feat_start, feat_len, feat_ids, feat_w, n_features)


def engram_norms(starts, lens, feat_ids, feat_w, hv, lexical_role, role, out_norm, out_lex):
    """Norms of chunk engrams (and of their lexical view), written into ``out_norm`` / ``out_lex``."""
    (_compiled or _load()).engram_norms(starts, lens, feat_ids, feat_w, hv, lexical_role, role, out_norm, out_lex)


def gather(slots, feat_start, feat_len, feat_ids, feat_w) -> tuple[np.ndarray, np.ndarray]:
    """The slots' features concatenated in slot order, ``(ids, weights)``. Compiled (the GIL released) once the
    build kernels are loaded; numpy in a process that has not loaded numba (it costs ~45 MB and 0.8 s to start)."""
    slots = np.asarray(slots, np.int64)
    if _compiled is not None:
        return _compiled.gather(slots, feat_start, feat_len, feat_ids, feat_w)
    idx, _ = _gather(feat_start[slots], feat_len[slots])
    return feat_ids[idx], feat_w[idx]


def word_features(slots, feat_start, feat_len, feat_ids, role) -> tuple[np.ndarray, np.ndarray]:
    """Each slot's word features (role 0) as CSR ``(ptr, ids)``; compiled or numpy as ``gather``."""
    slots = np.asarray(slots, np.int64)
    if _compiled is not None:
        return _compiled.word_features(slots, feat_start, feat_len, feat_ids, role)
    idx, owner = _gather(feat_start[slots], feat_len[slots])
    ids = feat_ids[idx].astype(np.int64)
    word = role[ids] == 0
    ptr = np.zeros(len(slots) + 1, np.int64)
    np.cumsum(np.bincount(owner[word], minlength=len(slots)), out=ptr[1:])
    return ptr, ids[word]


def used_ids(ids: np.ndarray, n_features: int) -> np.ndarray:
    """The distinct ids among ``ids``, ascending; compiled (a presence pass, no sort) or numpy as ``gather``."""
    if _compiled is not None:
        return _compiled.used_ids(ids, n_features)
    return np.unique(ids)


def remap(ids: np.ndarray, new_id: np.ndarray) -> np.ndarray:
    """``new_id[ids]`` as int32; compiled or numpy as ``gather``."""
    if _compiled is not None:
        return _compiled.remap(ids, new_id)
    return new_id[ids].astype(np.int32)


def random_hvs(seeds: np.ndarray) -> np.ndarray:
    """``vsa.random_hvs``, compiled once the build kernels are loaded: a keystroke's few new features then cost
    microseconds, not the vectorised pass's fixed ~0.1 ms. A process that only searches (the CLI) never loads numba
    for it."""
    if _compiled is not None:
        return _compiled.random_hvs(np.asarray(seeds, np.uint64))
    return vsa.random_hvs(seeds)


def warm() -> None:
    """Loads and runs every compiled kernel once (background work at server start, so that neither the first edit
    nor a search pays for numba's start-up)."""
    compiled = _compiled or _load()
    one = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.int32), np.zeros(1, np.int32),
           np.ones(1, np.int16))
    hv, roles = np.zeros((1, BLOCKS), np.int16), (np.ones(1, bool), np.zeros(1, np.uint8))
    engram_norms(one[0], one[2].astype(np.int64), one[3], one[4], hv, *roles, np.zeros(1), np.zeros(1))
    random_hvs(np.zeros(1, np.uint64))
    ptr, post_slot, post_w = compiled.transpose(*one, 1)
    compiled.bm25_postings(ptr, post_slot, post_w, np.ones(1, bool), np.zeros(1, np.int64), np.ones(1),
                           np.ones(1, np.int32), 1.0, 1.2, 0.75, np.zeros(1))
    compiled.bm25_slots(*one, np.ones(1), np.ones(1, np.int32), 1.0, 1.2, 0.75, np.zeros(1))
    compiled.engram_dots(*one, hv, *roles, False, np.zeros(BLOCKS * BLOCK_LEN, np.float32), np.zeros(1))
    global _fast
    _fast = compiled


def _gather(starts: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat positions of the ranges ``[starts[i], starts[i] + lens[i])`` and, for each, the range it is in."""
    lens = lens.astype(np.int64)
    total = int(lens.sum())
    first = np.zeros(len(lens), np.int64)
    if len(lens):
        np.cumsum(lens[:-1], out=first[1:])
    idx = np.repeat(starts.astype(np.int64) - first, lens) + np.arange(total, dtype=np.int64)
    return idx, np.repeat(np.arange(len(lens), dtype=np.int64), lens)


def _bm25_terms(w, tf, length, avg, k1, b):
    return w * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * length / avg))


def bm25_postings(ptr, post_slot, post_w, in_base, qids, qw, length, avg, k1, b, scores):
    """Adds each query feature's BM25 term to the slots in its postings (stage 1: candidate generation)."""
    if _fast is not None:
        return _fast.bm25_postings(ptr, post_slot, post_w, in_base, np.asarray(qids, np.int64),
                                   np.asarray(qw, np.float64), length, avg, k1, b, scores)
    qids = np.asarray(qids, np.int64)
    ok = (qids >= 0) & (qids < len(ptr) - 1)
    qids, qw = qids[ok], np.asarray(qw, np.float64)[ok]
    idx, owner = _gather(ptr[qids], ptr[qids + 1] - ptr[qids])
    slots = post_slot[idx].astype(np.int64)
    base = in_base[slots]
    slots, owner, tf = slots[base], owner[base], post_w[idx][base].astype(np.float64)
    terms = _bm25_terms(qw[owner], tf, length[slots], avg, k1, b)
    scores += np.bincount(slots, weights=terms, minlength=len(scores))[:len(scores)]


def bm25_slots(slots, feat_start, feat_len, feat_ids, feat_w, qdense, length, avg, k1, b, out):
    """BM25 of each slot over its own features; ``qdense[feature id]`` holds the query weights (0 elsewhere)."""
    if _fast is not None:
        return _fast.bm25_slots(np.asarray(slots, np.int64), feat_start, feat_len, feat_ids, feat_w, qdense, length,
                                avg, k1, b, out)
    slots = np.asarray(slots, np.int64)
    idx, owner = _gather(feat_start[slots], feat_len[slots])
    f = feat_ids[idx].astype(np.int64)
    inside = f < len(qdense)
    w = np.zeros(len(f), np.float64)
    w[inside] = qdense[f[inside]]
    hit = w != 0.0
    owner, w, tf = owner[hit], w[hit], feat_w[idx][hit].astype(np.float64)
    terms = _bm25_terms(w, tf, length[slots[owner]], avg, k1, b)
    out[:] = np.bincount(owner, weights=terms, minlength=len(slots))


_OFFSETS = np.arange(BLOCKS, dtype=np.int64) * BLOCK_LEN


def engram_dots(slots, feat_start, feat_len, feat_ids, feat_w, hv, lexical_role, role, lexical_only, qdim, out):
    """Dot product of a dense probe ``qdim`` (DIM,) with each slot's engram, without building the engram: the
    engram is the weighted bundle of its features' HVs, so the dot is the sum of weight x probe at each HV's slots.
    ``lexical_only`` restricts the engram to word and identifier features (natural-language queries)."""
    if _fast is not None:
        return _fast.engram_dots(np.asarray(slots, np.int64), feat_start, feat_len, feat_ids, feat_w, hv, lexical_role,
                                 role, lexical_only, qdim, out)
    slots = np.asarray(slots, np.int64)
    idx, owner = _gather(feat_start[slots], feat_len[slots])
    f = feat_ids[idx]
    w = feat_w[idx].astype(np.float64)
    if lexical_only:
        keep = lexical_role[role[f]]
        f, w, owner = f[keep], w[keep], owner[keep]
    at = qdim[hv[f].astype(np.int64) + _OFFSETS].sum(axis=1, dtype=np.float64)
    out[:] = np.bincount(owner, weights=w * at, minlength=len(slots))


