"""Sparse block codes: the hyperdimensional algebra engrams are built from.

A hypervector (HV) of one symbol is ``BLOCKS`` slot numbers, one active position per block of ``BLOCK_LEN``
dimensions, so ``DIM = BLOCKS * BLOCK_LEN``. Symbols are seeded by hashing their name, which makes every HV stable
across processes and machines without a vocabulary file. Operation names follow torchhd:

- ``bind(a, b)``: blockwise addition of slots modulo ``BLOCK_LEN`` — invertible and dissimilar to both inputs; used
  for ordered pairs (n-grams) together with ``permute``.
- ``permute(a, k)``: rotates blocks and slots; marks position in a sequence.
- ``bundle(hvs, weights)``: the weighted sum of the HVs' one-hot codes, a sparse integer vector. Sums are exact
  integers, so an aggregate can be updated as ``new = old - removed + added`` with no drift.
- ``similarity(a, b)``: cosine of two bundled sparse vectors.
"""

from __future__ import annotations

import numpy as np

BLOCKS = 8
BLOCK_LEN = 2048
DIM = BLOCKS * BLOCK_LEN

_BLOCK_OFFSETS = (np.arange(BLOCKS, dtype=np.int64) * BLOCK_LEN)
_MASK64 = (1 << 64) - 1


_POLY = np.uint64(0x9E3779B97F4A7C15)     # odd: the multiplier of the polynomial string hash


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised over uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_P = int(_POLY)
_LEN_MIX = 0xD6E8FEB86659FD93
_SMALL_BATCH = 24          # below this many names the per-name Python loop beats the vectorised pass
_FEW_SEEDS = 16            # the same for HVs from seeds (8 splitmix steps each)
_KEY_CACHE: dict[str, int] = {}     # keys of recently seen names (a keystroke re-encodes the same chunk's names)
_KEY_CACHE_MAX = 8192
_CACHED_BATCH = 512        # only batches up to this size use the cache (an index's batches would just churn it)


def _key_one(symbol: str) -> int:
    """``keys_of`` for one name, in plain Python (Horner's rule for the same polynomial; same result)."""
    data = symbol.encode("utf-8", "surrogatepass")
    h = 0
    for b in data:
        h = ((h + b) * _P) & _MASK64
    z = (h + len(data) * _LEN_MIX) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def keys_of(symbols: list[str]) -> np.ndarray:
    """64-bit keys of symbol names, shape (n,) uint64: a polynomial hash of each name's UTF-8 bytes mixed with its
    length through splitmix64. Vectorised over one joined buffer (no Python step per byte or per hash), and
    independent of Python's salted ``hash``, so keys (and the HVs seeded by them) are the same in every process.
    The feature table is keyed by these: two names that collide (odds ~n^2 / 2^65) share one feature."""
    n = len(symbols)
    if n < _SMALL_BATCH:
        return np.fromiter(map(_key_one, symbols), np.uint64, n)
    if n <= _CACHED_BATCH:
        cached = [_KEY_CACHE.get(s) for s in symbols]
        missing = [s for s, k in zip(symbols, cached) if k is None]
        if len(missing) < _SMALL_BATCH:
            new = {s: _key_one(s) for s in missing}
            keys = np.fromiter((k if k is not None else new[s] for s, k in zip(symbols, cached)), np.uint64, n)
            if len(_KEY_CACHE) + len(new) > _KEY_CACHE_MAX:
                _KEY_CACHE.clear()
            _KEY_CACHE.update(new)
            return keys
        keys = _keys_vectorised(symbols)
        if len(_KEY_CACHE) + n > _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE.update(zip(symbols, keys.tolist()))
        return keys
    return _keys_vectorised(symbols)


def _keys_vectorised(symbols: list[str]) -> np.ndarray:
    n = len(symbols)
    data = np.frombuffer(("\0".join(symbols) + "\0").encode("utf-8", "surrogatepass"), np.uint8)
    chars = np.fromiter(map(len, symbols), np.int64, n)
    lengths = chars if len(data) == int(chars.sum()) + n else \
        np.fromiter((len(s.encode("utf-8", "surrogatepass")) for s in symbols), np.int64, n)
    seg = lengths + 1                                   # each name and its NUL (which adds 0 to the sum)
    starts = np.zeros(n, np.int64)
    np.cumsum(seg[:-1], out=starts[1:])
    exponent = np.repeat(starts + lengths, seg) - np.arange(len(data), dtype=np.int64)   # NUL: 0, last byte: 1
    top = int(lengths.max()) + 1
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(top + 1, _POLY, np.uint64))
        powers[1:] = powers[:-1].copy()
        powers[0] = 1
        terms = data.astype(np.uint64) * powers[exponent]
        sums = np.add.reduceat(terms, starts)
        return _mix(sums + lengths.astype(np.uint64) * np.uint64(_LEN_MIX))


def seed_of(symbol: str) -> int:
    """The 64-bit key of one symbol (``keys_of``)."""
    return _key_one(symbol)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _random_slots(seed: int) -> list[int]:
    slots = []
    x = seed
    for _ in range(BLOCKS):
        x = _splitmix64(x)
        slots.append(x % BLOCK_LEN)
    return slots


def random_hv(seed: int) -> np.ndarray:
    """The HV of a seed: shape (BLOCKS,), int64 slot numbers in [0, BLOCK_LEN)."""
    return np.array(_random_slots(seed), np.int64)


def random_hvs(seeds: np.ndarray) -> np.ndarray:
    """Vectorised ``random_hv``: seeds shape (n,) uint64 -> HVs shape (n, BLOCKS) int64 (identical results). A few
    seeds (the new features of one keystroke) go one at a time: the vectorised pass costs ~0.3 ms whatever n."""
    if len(seeds) < _FEW_SEEDS:
        return np.array([_random_slots(int(x)) for x in seeds], np.int64).reshape(len(seeds), BLOCKS)
    x = np.asarray(seeds, dtype=np.uint64).copy()
    out = np.empty((len(x), BLOCKS), dtype=np.int64)
    with np.errstate(over="ignore"):
        for block in range(BLOCKS):
            x = x + np.uint64(0x9E3779B97F4A7C15)
            z = x
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            out[:, block] = (z % np.uint64(BLOCK_LEN)).astype(np.int64)
            x = z
    return out


def symbol_hv(symbol: str) -> np.ndarray:
    """The HV of a named symbol: shape (BLOCKS,)."""
    return random_hv(seed_of(symbol))


def bind(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Binds HVs, shape (..., BLOCKS) each -> same. ``unbind(bind(a, b), b) == a``."""
    return (a + b) % BLOCK_LEN


def unbind(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Inverse of ``bind``: recovers ``a`` from ``bind(a, b)`` and ``b``."""
    return (c - b) % BLOCK_LEN


def permute(a: np.ndarray, k: int = 1) -> np.ndarray:
    """Permutes HVs k times, shape (..., BLOCKS) -> same: blocks rotate and slots shift."""
    return (np.roll(a, k, axis=-1) + k) % BLOCK_LEN


def active_dims(hv: np.ndarray) -> np.ndarray:
    """The dimensions an HV switches on, shape (BLOCKS,) int64 in [0, DIM)."""
    return _BLOCK_OFFSETS + hv


def sparse_sum(dims: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one sparse sum: entries ``(dims, vals)`` with repeats -> sorted unique int32 dims and their int64 sums,
    zeros dropped. Every bundle, aggregate and delta in the package goes through here."""
    if len(dims) == 0:
        return np.empty(0, np.int32), np.empty(0, np.int64)
    dims = np.asarray(dims, np.int64)
    order = np.argsort(dims, kind="stable")
    dims, vals = dims[order], np.asarray(vals, np.int64)[order]
    first = np.flatnonzero(np.concatenate(([True], dims[1:] != dims[:-1])))
    sums = np.add.reduceat(vals, first)
    keep = sums != 0
    return dims[first][keep].astype(np.int32), sums[keep]


def bundle(hvs: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bundles HVs, shape (n, BLOCKS), with integer weights, shape (n,), into a sparse integer vector.

    Returns ``(dims, values)``: sorted unique int32 dimensions and their int64 sums. Exact, so bundles add and
    subtract without drift.
    """
    hvs = np.asarray(hvs, np.int64).reshape(-1, BLOCKS)
    return sparse_sum((hvs + _BLOCK_OFFSETS).ravel(), np.repeat(np.asarray(weights, np.int64), BLOCKS))


def add_sparse(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], sign: int = 1
               ) -> tuple[np.ndarray, np.ndarray]:
    """``a + sign * b`` for two sparse integer vectors; zero entries are dropped."""
    return sparse_sum(np.concatenate([a[0], b[0]]),
                      np.concatenate([np.asarray(a[1], np.int64), sign * np.asarray(b[1], np.int64)]))


def similarity(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Cosine similarity of two sparse vectors ``(dims, values)``; 0.0 when either is empty."""
    common, ia, ib = np.intersect1d(a[0], b[0], assume_unique=True, return_indices=True)
    if len(common) == 0:
        return 0.0
    dot = float(np.dot(a[1][ia].astype(np.float64), b[1][ib].astype(np.float64)))
    na = float(np.linalg.norm(a[1].astype(np.float64)))
    nb = float(np.linalg.norm(b[1].astype(np.float64)))
    return dot / (na * nb) if na and nb else 0.0
