"""A semantic layer learned from the workspace itself, by Random Indexing.

Every word gets a fixed sparse random index vector; its *context vector* is the bundle of the index vectors of the
words it shares chunks with. Words used in the same places (``count`` and ``len``, ``remove`` and ``delete``) end up
with similar context vectors, so a query word can reach code that says it differently. Rebuilt on a full index or a
store load — it is a soft signal and need not follow every keystroke: the engine refreshes it in the background, never
on a query path. The same refresh builds the static-vector ``MeaningSpace`` of the workspace's words (``meaning``),
which the default ranking uses; the Random Indexing neighbours serve only the ranking before it (``ranking.BEFORE``),
so they are learnt only when ``RANDOM_INDEXING`` is set (the benches that compare against that ranking set it): the
default refresh skips a Python step per word and a (words x 256) matrix.
"""

from __future__ import annotations

import numba
import numpy as np

from . import vsa
from .meaning import MeaningSpace

RANDOM_INDEXING = False     # learn the Random Indexing context vectors (only the ranking before the meaning channel)
SEM_DIM = 256
SEM_ACTIVE = 8
MIN_DF = 2
MAX_DF_FRACTION = 0.2


def index_vector(word: str) -> tuple[np.ndarray, np.ndarray]:
    """A word's sparse ternary index vector: SEM_ACTIVE positions in [0, SEM_DIM) with signs ±1."""
    x = vsa.seed_of("ri:" + word)
    dims = np.empty(SEM_ACTIVE, np.int64)
    signs = np.empty(SEM_ACTIVE, np.float32)
    for i in range(SEM_ACTIVE):
        x = vsa._splitmix64(x)
        dims[i] = x % SEM_DIM
        signs[i] = 1.0 if (x >> 40) & 1 else -1.0
    return dims, signs


@numba.njit(cache=True, nogil=True)
def _context_vectors(chunk_ptr, chunk_terms, index_dims, index_signs, n_terms, dim):
    """context[t] = sum over the chunks holding t of that chunk's bundle of index vectors, less t's own."""
    ctx = np.zeros((n_terms, dim), np.float32)
    bundle = np.zeros(dim, np.float32)
    for c in range(len(chunk_ptr) - 1):
        bundle[:] = 0.0
        for p in range(chunk_ptr[c], chunk_ptr[c + 1]):
            t = chunk_terms[p]
            for j in range(index_dims.shape[1]):
                bundle[index_dims[t, j]] += index_signs[t, j]
        for p in range(chunk_ptr[c], chunk_ptr[c + 1]):
            t = chunk_terms[p]
            for d in range(dim):
                ctx[t, d] += bundle[d]
            for j in range(index_dims.shape[1]):
                ctx[t, index_dims[t, j]] -= index_signs[t, j]
    return ctx


class TermSpace:
    """Context vectors of the workspace's words and their nearest neighbours."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.row: dict[str, int] = {}
        self.unit = np.zeros((0, SEM_DIM), np.float32)
        self.meaning = MeaningSpace()     # the static-vector channel's view of the same words

    @classmethod
    def learn(cls, chunk_words: list[list[str]]) -> "TermSpace":
        """Learns from each chunk's distinct words (common and one-off words are left out)."""
        ids: dict[str, int] = {}
        ptr = [0]
        terms: list[int] = []
        for words in chunk_words:
            terms.extend(ids.setdefault(w, len(ids)) for w in words)
            ptr.append(len(terms))
        return cls.learn_arrays(np.asarray(ptr, np.int64), np.asarray(terms, np.int64), list(ids))

    @classmethod
    def learn_arrays(cls, chunk_ptr: np.ndarray, chunk_terms: np.ndarray, names: list[str]) -> "TermSpace":
        """The same from flat arrays: chunk c holds term ids ``chunk_terms[chunk_ptr[c]:chunk_ptr[c+1]]``, each
        naming ``names[id]`` (ids need not be dense; ``None`` names are skipped)."""
        space = cls()
        n_chunks = max(1, len(chunk_ptr) - 1)
        df = np.bincount(chunk_terms, minlength=len(names)) if len(chunk_terms) else np.zeros(len(names), np.int64)
        max_df = max(MIN_DF, int(MAX_DF_FRACTION * n_chunks))
        space.meaning = MeaningSpace.build(chunk_terms, names)
        if not RANDOM_INDEXING:
            return space
        candidates = np.flatnonzero((df >= MIN_DF) & (df <= max_df))
        keep = [int(i) for i in candidates if names[i] is not None and len(names[i]) > 1 and not names[i].isdigit()]
        if not keep:
            return space
        keep.sort(key=lambda i: names[i])
        space.words = [names[i] for i in keep]
        space.row = {w: r for r, w in enumerate(space.words)}
        rows = np.full(len(names), -1, np.int64)
        rows[keep] = np.arange(len(keep))
        dims = np.empty((len(keep), SEM_ACTIVE), np.int64)
        signs = np.empty((len(keep), SEM_ACTIVE), np.float32)
        for r, w in enumerate(space.words):
            dims[r], signs[r] = index_vector(w)
        mapped = rows[chunk_terms] if len(chunk_terms) else chunk_terms
        inside = mapped >= 0
        owner = np.repeat(np.arange(len(chunk_ptr) - 1), np.diff(chunk_ptr))
        counts = np.bincount(owner[inside], minlength=len(chunk_ptr) - 1)
        ptr = np.zeros(len(chunk_ptr), np.int64)
        np.cumsum(counts, out=ptr[1:])
        ctx = _context_vectors(ptr, mapped[inside], dims, signs, len(keep), SEM_DIM)
        norms = np.linalg.norm(ctx, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        space.unit = (ctx / norms).astype(np.float32)
        return space

    def neighbours(self, word: str, k: int = 3, min_similarity: float = 0.35) -> list[tuple[str, float]]:
        """Up to k other words whose context vectors are most similar to ``word``'s (cached per word)."""
        key = (word, k, min_similarity)
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            if len(cache) > 50_000:
                cache.clear()
            cache[key] = self._neighbours(word, k, min_similarity)
        return cache[key]

    def _neighbours(self, word: str, k: int, min_similarity: float) -> list[tuple[str, float]]:
        r = self.row.get(word)
        if r is None:
            return []
        sims = self.unit @ self.unit[r]
        sims[r] = -1.0
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k] if len(sims) > k else np.arange(len(sims))
        return sorted(((self.words[i], float(sims[i])) for i in top if sims[i] >= min_similarity),
                      key=lambda x: -x[1])
