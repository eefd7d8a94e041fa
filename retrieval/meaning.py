"""The semantic channel: what words mean in code before the workspace is seen.

The shipped table (``data/codesearch.npz``, trained once by ``bench/nl_eval/codesearch.py`` on documented functions
of public packages that no evaluation set uses) gives every word two vectors: a *query* vector for a question's
words and a *code* vector for a chunk's, trained so that a question's summed query vectors point at the summed code
vectors of the function that answers it ("largest" finds ``max``, "lowercase" finds ``lower``). Both start from
static vectors distilled from a sentence encoder (``data/static_minilm.npz``, ``bench/nl_eval/distill.py``), which
this module also reads as a one-sided table. A word the table lacks gets its longest known pieces' vectors
(WordPiece-style), so no word is without a vector unless no piece is known.

``MeaningSpace`` holds the code vectors of one workspace's words, keyed by feature id, built with the Random
Indexing layer (background work, never on a query path). It serves two things: the workspace words nearest a
question's word (query expansion, so chunks that say it differently become candidates) and, through
``meaning_kernels``, the cosine of a question's meaning and a chunk's (the weighted sum of its words' code vectors,
computed from the chunk's features).
"""

from __future__ import annotations

import logging
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import features

DISTILLED = Path(__file__).parent / "data" / "static_minilm.npz"
DATA = Path(__file__).parent / "data" / "codesearch.npz"
_MAX_PIECE = 12
NEIGHBOUR_SIMILARITY = 0.4      # the least cosine of a question's word and a workspace word added for it
log = logging.getLogger(__name__)


class Rows:
    """int8 rows with a per-row scale, read as float32 rows (``rows[i]``, ``rows[[i, j]]``, ``rows[:]``): a
    44,000-word table stays 11 MB in memory instead of 45 MB."""

    def __init__(self, values: np.ndarray, scale: np.ndarray) -> None:
        self.values = values
        self.scale = scale.astype(np.float32)
        self.shape = values.shape

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):
        return self.values[index].astype(np.float32) * self.scale[index][..., None]


def _as_rows(rows):
    return rows if isinstance(rows, Rows) else np.asarray(rows, np.float32)


def _unit(rows):
    """The same rows scaled to length 1 (int8 rows keep their values and get a new scale)."""
    values = rows.values if isinstance(rows, Rows) else np.asarray(rows, np.float32)
    norms = np.linalg.norm(values.astype(np.float32), axis=1)
    norms[norms == 0] = 1.0
    if isinstance(rows, Rows):
        return Rows(values, 1.0 / norms)
    return (values / norms[:, None]).astype(np.float32)


class WordVectors:
    """Word vectors and a word -> row index, for both sides of a search: ``code`` rows give a chunk's words their
    meaning, ``query`` rows a question's. The distilled table has one set of unit rows for both; the trained
    code-search table has two, whose lengths are learnt weights (a word that says a lot about code is long).
    ``vector`` and ``query_vector`` handle words the table lacks. Rows are float32 arrays or ``Rows``."""

    def __init__(self, words: list[str], vectors, query=None) -> None:
        self.row = {w: i for i, w in enumerate(words)}
        self.code = _as_rows(vectors) if query is not None else _unit(vectors)
        self.query = self.code if query is None else _as_rows(query)
        self.dim = self.code.shape[1]
        self._cache: dict[str, np.ndarray | None] = {}
        self._query_cache: dict[str, np.ndarray | None] = {}

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
            words = [str(w) for w in z["words"]]
            code = Rows(z["vectors"], z["scale"])
            query = Rows(z["query_vectors"], z["query_scale"]) if "query_vectors" in z else None
        return cls(words, code, query)

    def bipolar(self, bits: int, seed: int = 12) -> "WordVectors":
        """The same words as bipolar hypervectors: a fixed random projection to ``bits`` dimensions, then the sign
        (MAP-style VSA; similar words share most signs). Unit-scaled, so dot products stay cosines."""
        proj = np.random.default_rng(seed).standard_normal((self.dim, bits)).astype(np.float32)
        out = WordVectors.__new__(WordVectors)
        out.row, out.dim, out._cache, out._query_cache = self.row, bits, {}, {}
        out.code = (np.sign(self.code[:] @ proj) / np.sqrt(bits)).astype(np.float32)
        out.query = out.code if self.query is self.code else \
            (np.sign(self.query[:] @ proj) / np.sqrt(bits)).astype(np.float32)
        return out

    def vector(self, word: str) -> np.ndarray | None:
        """A lower-case word's code-side vector: its own row, else its longest-match pieces' (``serializer`` ->
        serial + ##izer) summed and scaled to their mean length (unit for the distilled table); None when no piece
        is known."""
        return self._lookup(word, self.code, self._cache)

    def query_vector(self, word: str) -> np.ndarray | None:
        """The same on the query side (the code side's for the distilled table)."""
        if self.query is self.code:
            return self.vector(word)
        return self._lookup(word, self.query, self._query_cache)

    def _lookup(self, word: str, table, cache: dict) -> np.ndarray | None:
        if word in cache:
            return cache[word]
        r = self.row.get(word)
        stem_rows = self._stem_rows().get(word) if r is None and features.STEM else None
        if r is not None:
            v = table[r]
        else:
            rows = stem_rows or self._pieces(word)      # a stemmed word means what its inflections mean
            v = None
            if rows:
                vs = table[rows]
                s = vs.sum(0)
                n = float(np.linalg.norm(s))
                v = (s * (float(np.linalg.norm(vs, axis=1).mean()) / n)).astype(np.float32) if n > 0 else None
        if len(cache) > 200_000:
            cache.clear()
        cache[word] = v
        return v

    def _pieces(self, word: str) -> list[int]:
        """Rows of the greedy longest-match WordPiece pieces of ``word`` (unknown characters skipped)."""
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
        return rows


@lru_cache(maxsize=1)
def shipped() -> WordVectors | None:
    """The shipped table, loaded once; None (the channel is off, and the log says why) when it is missing."""
    try:
        return WordVectors.load(DATA)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:   # missing, foreign, truncated
        log.warning("static word vectors unavailable (%s): the semantic channel is off", e)
        return None


class MeaningSpace:
    """Code-side meaning vectors of a workspace's words: ``row[feature id]`` -> row of ``code`` (-1: none)."""

    def __init__(self, words: list[str] | None = None, row: np.ndarray | None = None,
                 code: np.ndarray | None = None, vectors: WordVectors | None = None) -> None:
        self.vectors = vectors
        self.words = words or []
        self.row = row if row is not None else np.full(0, -1, np.int32)
        self.code = code if code is not None else np.zeros((0, vectors.dim if vectors else 1), np.float32)
        norms = np.linalg.norm(self.code, axis=1)
        norms[norms == 0] = 1.0
        self._norms = norms
        self._cache: dict = {}

    @property
    def dim(self) -> int:
        return self.code.shape[1]

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
        code = np.asarray(vecs, np.float32).reshape(len(vecs), vectors.dim)
        return cls(words, row, code, vectors)

    def query_vector(self, weighted_words: dict[str, float]) -> np.ndarray | None:
        """The unit meaning of a query: the weighted sum of its words' query-side vectors; None when none has
        one."""
        if self.vectors is None:
            return None
        q = np.zeros(self.vectors.dim, np.float32)
        for word, w in weighted_words.items():
            v = self.vectors.query_vector(word)
            if v is not None:
                q += w * v
        n = float(np.linalg.norm(q))
        return q / n if n > 0 else None

    def neighbours(self, word: str, k: int = 3, min_similarity: float | None = None) -> list[tuple[str, float]]:
        """Up to k other workspace words whose code-side meaning is nearest (by cosine) a query word's (cached per
        word)."""
        if min_similarity is None:
            min_similarity = NEIGHBOUR_SIMILARITY
        key = (word, k, min_similarity)
        if key not in self._cache:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = self._neighbours(word, k, min_similarity)
        return self._cache[key]

    def _neighbours(self, word: str, k: int, min_similarity: float) -> list[tuple[str, float]]:
        if self.vectors is None or not len(self.code):
            return []
        v = self.vectors.query_vector(word)
        if v is None or not np.any(v):
            return []
        sims = (self.code @ v) / (self._norms * float(np.linalg.norm(v)))
        top = np.argpartition(-sims, min(k + 1, len(sims) - 1))[:k + 1] if len(sims) > k + 1 else \
            np.arange(len(sims))
        return sorted(((self.words[i], float(sims[i])) for i in top.tolist()
                       if sims[i] >= min_similarity and self.words[i] != word), key=lambda x: -x[1])[:k]
