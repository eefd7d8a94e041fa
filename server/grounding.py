"""Grounded or silent: whether retrieved code can answer a workspace question, and whether an answer's citations
are ones it was given.

Pure functions over plain values (hits and snippets only need ``path``, ``start_line``, ``end_line``, ``text``).
Search scores are relative (the top hit is always near the top of the scale), so they cannot say "nothing
matched". Instead a hit *supports* a question when it contains enough of the question's content words (sub-tokens
of its identifiers, comments, strings and path, compared after a light stemming: parse/parsing/parser). With no
supporting hit, the model is not asked: it would answer from its own imagination.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

from engram_ls.retrieval.features import code_features, query_features

# Words that name code in general rather than anything in particular: they do not make a hit relevant.
GENERIC = frozenset(
    "code codes function functions method methods class classes file files module modules program project "
    "workspace repo repository thing things work works working happen happens mean means explain explained "
    "describe implemented implementation implement part parts here example way ways doing make makes made "
    "variable variables value values line lines call calls called where i me my please tell show".split())
_SUFFIXES = ("ations", "ation", "ings", "ing", "ers", "er", "ied", "ies", "ed", "es", "s", "e")
MIN_STEM = 4


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[:-len(suffix)]
    return word


def content_terms(question: str) -> list[str]:
    """The question's content words (lower-cased sub-tokens, no stop words; generic code words only when nothing
    else is left)."""
    words = sorted({f[2:] for f in query_features(question) if f.startswith("t:") and not f[2:].isdigit()})
    specific = [w for w in words if w not in GENERIC]
    return specific or words


def _words(text: str, path: str) -> set[str]:
    return {f[2:] for f in code_features(text, path) if f.startswith("t:")}


def matched_terms(terms: Sequence[str], text: str, path: str = "") -> list[str]:
    """The terms that occur in the text (or its path): same stem, or a stem of 4+ letters that starts a word."""
    words = _words(text, path)
    stems = {stem(w) for w in words}
    out = []
    for term in terms:
        s = stem(term)
        if term in words or s in stems or (len(s) >= MIN_STEM and any(w.startswith(s) for w in words)):
            out.append(term)
    return out


def needed(n_terms: int) -> int:
    """Content words one hit must contain to support a question with ``n_terms`` of them: 1 for one or two, then
    40 % of them, at most 3."""
    return min(3, max(1, math.ceil(0.4 * n_terms)))


@dataclass
class Grounding:
    terms: list[str]
    supporting: list = field(default_factory=list)   # hits that support the question, in retrieval order
    nearest: list = field(default_factory=list)      # the best hits when none supports it (at most 3)

    @property
    def grounded(self) -> bool:
        return bool(self.supporting)

    def message(self) -> str:
        if self.grounded:
            return ""
        if not self.terms:
            return "The question names nothing to look for in the workspace, so the model was not asked."
        return "Nothing in the workspace matched the question, so the model was not asked."


def assess(question: str, hits: Sequence, key=lambda h: h) -> Grounding:
    """Which hits support ``question``. ``key`` maps an item of ``hits`` to the hit itself (e.g. for
    ``(root, hit)`` pairs)."""
    terms = content_terms(question)
    if not terms:
        return Grounding(terms, [], list(hits[:3]))
    need = needed(len(terms))
    supporting = [item for item in hits
                  if len(matched_terms(terms, key(item).text, key(item).path)) >= need]
    return Grounding(terms, supporting, [] if supporting else list(hits[:3]))


# -- citations --------------------------------------------------------------------------------------------------
_CITATION = re.compile(r"\[?`?(?P<path>[\w.\-/]*[\w\-]\.[A-Za-z0-9]{1,8}):(?P<start>\d+)(?:-(?P<end>\d+))?`?\]?")


@dataclass
class Citations:
    text: str                                       # the answer with invented bracketed citations removed
    valid: list = field(default_factory=list)       # snippets the answer cites
    invented: list[str] = field(default_factory=list)  # citations of code the model was not given


def _matches(snippet, path: str, start: int) -> bool:
    same = snippet.path == path or snippet.path.endswith("/" + path)
    return same and snippet.start_line <= start <= max(snippet.end_line, snippet.start_line)


def check_citations(text: str, given: Sequence) -> Citations:
    """Every ``path:line`` in an answer must name a snippet it was given; the others are listed and, when in
    brackets, removed from the text."""
    valid, invented = [], []

    def replace(m: re.Match) -> str:
        path, start = m.group("path"), int(m.group("start"))
        hit = next((s for s in given if _matches(s, path, start)), None)
        if hit is not None:
            if hit not in valid:
                valid.append(hit)
            return m.group(0)
        label = f"{path}:{start}" + (f"-{m.group('end')}" if m.group("end") else "")
        if label not in invented:
            invented.append(label)
        return "" if m.group(0).startswith("[") and m.group(0).endswith("]") else m.group(0)

    cleaned = _CITATION.sub(replace, text)
    if invented:
        cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned))
    return Citations(cleaned, valid, invented)
