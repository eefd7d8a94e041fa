"""The query kernels have two implementations: vectorised numpy (a fresh process's first search needs no compile
step) and numba twins used once the compiled module is warm. They must agree on any index."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engram_ls.retrieval import compiled, kernels
from engram_ls.retrieval.vsa import BLOCK_LEN, BLOCKS, DIM


def random_index(seed: int, n_slots: int, n_features: int):
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 12, n_slots).astype(np.int32)
    starts = np.zeros(n_slots, np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    starts += rng.integers(0, 3, n_slots).cumsum()          # gaps between slots, as garbage leaves in the arena
    size = int(starts[-1] + lens[-1]) + 1
    feat_ids = rng.integers(0, n_features, size).astype(np.int32)
    feat_w = rng.integers(1, 9, size).astype(np.int16)
    hv = rng.integers(0, BLOCK_LEN, (n_features, BLOCKS)).astype(np.int16)
    role = rng.integers(0, 7, n_features).astype(np.uint8)
    length = rng.integers(1, 200, n_slots).astype(np.int32)
    in_base = rng.random(n_slots) < 0.8
    return rng, starts, lens, feat_ids, feat_w, hv, role, length, in_base


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 40), st.booleans())
def test_numpy_kernels_equal_their_compiled_twins(seed, n_slots, n_features, lexical_only):
    rng, starts, lens, feat_ids, feat_w, hv, role, length, in_base = random_index(seed, n_slots, n_features)
    lexical_role = np.array([c in "ti" for c in "tidcamo"])
    slots = rng.choice(n_slots, size=min(n_slots, 25), replace=False).astype(np.int64)
    qdense = np.where(rng.random(n_features) < 0.4, rng.random(n_features), 0.0)
    qdim = np.where(rng.random(DIM) < 0.02, rng.random(DIM), 0.0).astype(np.float32)
    ptr, post_slot, post_w = compiled.transpose(np.arange(n_slots, dtype=np.int64), starts, lens, feat_ids, feat_w,
                                                n_features)
    qids = rng.choice(n_features, size=min(n_features, 6), replace=False).astype(np.int64)
    qw = rng.random(len(qids))
    args = {
        "bm25_postings": (ptr, post_slot, post_w, in_base, qids, qw, length, 37.5, 1.2, 0.75, np.zeros(n_slots)),
        "bm25_slots": (slots, starts, lens, feat_ids, feat_w, qdense, length, 37.5, 1.2, 0.75, np.zeros(len(slots))),
        "engram_dots": (slots, starts, lens, feat_ids, feat_w, hv, lexical_role, role, lexical_only, qdim,
                        np.zeros(len(slots))),
    }
    saved = kernels._fast
    try:
        for name, a in args.items():
            kernels._fast = None
            slow = [x.copy() if isinstance(x, np.ndarray) else x for x in a]
            getattr(kernels, name)(*slow)
            kernels._fast = compiled
            fast = [x.copy() if isinstance(x, np.ndarray) else x for x in a]
            getattr(kernels, name)(*fast)
            assert np.allclose(slow[-1], fast[-1], rtol=1e-9, atol=1e-9), name
            assert slow[-1].any() or not fast[-1].any()
    finally:
        kernels._fast = saved


def test_warm_switches_the_query_kernels_to_the_compiled_twins():
    kernels.warm()
    assert kernels._fast is compiled


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=40))
def test_compiled_hvs_equal_the_vectorised_ones(seeds):
    from engram_ls.retrieval import vsa

    seeds = np.array(seeds, np.uint64)
    assert np.array_equal(compiled.random_hvs(seeds), vsa.random_hvs(seeds))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_the_compiled_gathers_equal_a_plain_loop(seed, n_slots):
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 6, n_slots)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    feat_ids = rng.integers(0, 20, int(lens.sum())).astype(np.int32)
    feat_w = rng.integers(1, 9, int(lens.sum())).astype(np.int16)
    role = rng.integers(0, 3, 20).astype(np.uint8)
    slots = rng.permutation(n_slots)[:max(1, n_slots // 2)].astype(np.int64)
    ids, w = compiled.gather(slots, starts, lens, feat_ids, feat_w)
    ranges = [range(starts[s], starts[s] + lens[s]) for s in slots]
    assert ids.tolist() == [int(feat_ids[p]) for r in ranges for p in r]
    assert w.tolist() == [int(feat_w[p]) for r in ranges for p in r]
    assert compiled.used_ids(ids, 20).tolist() == sorted(set(ids.tolist()))
    table = rng.permutation(20).astype(np.int32)
    assert compiled.remap(ids, table).tolist() == [int(table[i]) for i in ids]
    ptr, words = compiled.word_features(slots, starts, lens, feat_ids, role)
    for i, r in enumerate(ranges):
        assert words[ptr[i]:ptr[i + 1]].tolist() == [int(feat_ids[p]) for p in r if role[feat_ids[p]] == 0]
    saved = kernels._compiled
    try:                                # a process without numba takes the numpy paths: the same results
        kernels._compiled = None
        slow = (kernels.gather(slots, starts, lens, feat_ids, feat_w), kernels.used_ids(ids, 20),
                kernels.remap(ids, table), kernels.word_features(slots, starts, lens, feat_ids, role))
    finally:
        kernels._compiled = saved
    assert [a.tolist() for a in slow[0]] == [ids.tolist(), w.tolist()]
    assert slow[1].tolist() == sorted(set(ids.tolist())) and slow[2].tolist() == compiled.remap(ids, table).tolist()
    assert slow[3][0].tolist() == ptr.tolist() and slow[3][1].tolist() == words.tolist()
