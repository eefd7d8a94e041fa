import numpy as np
from hypothesis import given, strategies as st

from engram_ls.retrieval import vsa

hvs = st.integers(min_value=0, max_value=2**64 - 1).map(vsa.random_hv)


def test_symbol_hvs_are_stable_and_distinct():
    a = vsa.symbol_hv("t:parse")
    assert np.array_equal(a, vsa.symbol_hv("t:parse"))
    assert a.shape == (vsa.BLOCKS,) and a.min() >= 0 and a.max() < vsa.BLOCK_LEN
    assert not np.array_equal(a, vsa.symbol_hv("t:parser"))


def test_seeds_and_hvs_are_fixed_values_across_processes_and_machines():
    """Pinned values (polynomial hash of the UTF-8 bytes mixed with the length by splitmix64, then splitmix64 per
    block): a seed or HV that changed across processes, machines or releases would silently invalidate every
    stored engram (a deliberate change bumps the store's format version)."""
    assert vsa.seed_of("t:parse") == 9686825697569293890
    assert vsa.seed_of("t:parser") == 7403119895177289950
    assert vsa.symbol_hv("t:parse").tolist() == [686, 657, 1149, 1180, 1256, 1540, 1014, 378]
    assert vsa.symbol_hv("t:parser").tolist() == [653, 400, 255, 1413, 1641, 1166, 1167, 248]
    # and in a fresh interpreter with a different hash salt
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from engram_ls.retrieval import vsa; "
                          "print(vsa.seed_of('t:parse'), vsa.symbol_hv('t:parse').tolist())"],
                         capture_output=True, text=True, check=True, env={**__import__("os").environ,
                                                                           "PYTHONHASHSEED": "12345"}).stdout
    assert out.split(None, 1) == ["9686825697569293890", "[686, 657, 1149, 1180, 1256, 1540, 1014, 378]\n"]


@given(st.lists(st.text(max_size=30), max_size=40))
def test_batch_keys_equal_one_at_a_time_keys_and_differ_for_different_names(names):
    keys = vsa.keys_of(names)
    assert keys.dtype == np.uint64 and len(keys) == len(names)
    assert keys.tolist() == [vsa.seed_of(n) for n in names]     # a batch never depends on its neighbours
    padded = vsa.keys_of(names + ["pad"] * vsa._SMALL_BATCH)       # the vectorised path equals the per-name one
    assert padded[:len(names)].tolist() == keys.tolist()
    distinct = dict(zip(names, keys.tolist()))
    assert len(set(distinct.values())) == len(distinct)        # no collision among these (odds ~2^-50)


def test_keys_see_every_byte_and_the_length():
    names = ["ab", "ba", "a", "b", "a\x01", "é", "e", "t:parse", "t:pars", "t:parsee", "x" * 200, "x" * 201]
    keys = vsa.keys_of(names)
    assert len(set(keys.tolist())) == len(names)


def test_vectorised_hvs_match_scalar():
    seeds = np.array([vsa.seed_of(f"x{i}") for i in range(50)], np.uint64)
    bulk = vsa.random_hvs(seeds)
    for i, s in enumerate(seeds):
        assert np.array_equal(bulk[i], vsa.random_hv(int(s)))
    for n in range(0, 9):      # the few-seeds path (one keystroke's new features) gives the same HVs
        assert np.array_equal(vsa.random_hvs(seeds[:n]), bulk[:n])


@given(hvs, hvs)
def test_bind_is_invertible_and_dissimilar(a, b):
    c = vsa.bind(a, b)
    assert np.array_equal(vsa.unbind(c, b), a)
    assert c.shape == (vsa.BLOCKS,) and c.min() >= 0 and c.max() < vsa.BLOCK_LEN
    # c keeps a's slot exactly where b's slot is 0 (and b's where a's is 0): for random HVs, almost nowhere
    assert int(np.sum(c == a)) == int(np.sum(b == 0)) and int(np.sum(c == b)) == int(np.sum(a == 0))
    assert np.sum(c == a) <= 2 and np.sum(c == b) <= 2


def test_bind_and_permute_are_dissimilar_to_inputs():
    a, b = vsa.symbol_hv("a"), vsa.symbol_hv("b")
    ones = np.ones(1, np.int64)
    sa = vsa.bundle(a[None], ones)
    assert vsa.similarity(sa, vsa.bundle(vsa.bind(a, b)[None], ones)) < 0.5
    assert vsa.similarity(sa, vsa.bundle(vsa.permute(a, 1)[None], ones)) < 0.5
    assert abs(vsa.similarity(sa, sa) - 1.0) < 1e-9


def test_bundle_sums_are_exact_and_subtract_back():
    items = np.stack([vsa.symbol_hv(f"f{i}") for i in range(20)])
    w = np.arange(1, 21)
    whole = vsa.bundle(items, w)
    part = vsa.bundle(items[:5], w[:5])
    rest = vsa.add_sparse(whole, part, sign=-1)
    expected = vsa.bundle(items[5:], w[5:])
    assert np.array_equal(rest[0], expected[0]) and np.array_equal(rest[1], expected[1])


def test_bundle_is_similar_to_its_members():
    items = np.stack([vsa.symbol_hv(f"m{i}") for i in range(10)])
    b = vsa.bundle(items, np.ones(10, np.int64))
    member = vsa.bundle(items[:1], np.ones(1, np.int64))
    stranger = vsa.bundle(vsa.symbol_hv("zzz")[None], np.ones(1, np.int64))
    assert vsa.similarity(b, member) > 0.2 > vsa.similarity(b, stranger)


def test_add_sparse_with_empty_operands_and_cancellation():
    empty = (np.empty(0, np.int32), np.empty(0, np.int64))
    x = vsa.bundle(np.stack([vsa.symbol_hv("p"), vsa.symbol_hv("q")]), np.array([2, -3]))
    for got in (vsa.add_sparse(x, empty), vsa.add_sparse(empty, x)):
        assert np.array_equal(got[0], x[0]) and np.array_equal(got[1], x[1])
    neg = vsa.add_sparse(empty, x, sign=-1)
    assert np.array_equal(neg[0], x[0]) and np.array_equal(neg[1], -x[1])
    zero = vsa.add_sparse(x, x, sign=-1)  # exact cancellation leaves no zero entries behind
    assert len(zero[0]) == 0 == len(zero[1]) and zero[0].dtype == np.int32 and zero[1].dtype == np.int64
    both = vsa.add_sparse(empty, empty)
    assert len(both[0]) == 0 and both[0].dtype == np.int32 and both[1].dtype == np.int64
    assert vsa.similarity(empty, x) == 0.0 == vsa.similarity(x, empty)


def test_sparse_sum_merges_repeats_and_drops_zeros():
    d, v = vsa.sparse_sum(np.array([5, 1, 5, 3, 3]), np.array([1, 2, 3, 4, -4]))
    assert d.tolist() == [1, 5] and v.tolist() == [2, 4] and d.dtype == np.int32


def test_permute_shifts_every_slot_and_inverts_after_a_full_cycle():
    a = vsa.symbol_hv("perm")
    p = vsa.permute(a, 1)
    assert p.tolist() == [(x + 1) % vsa.BLOCK_LEN for x in np.roll(a, 1).tolist()]
    assert not np.array_equal(vsa.permute(a, 1), vsa.permute(a, 2))
    assert np.array_equal(vsa.active_dims(a) // vsa.BLOCK_LEN, np.arange(vsa.BLOCKS))
