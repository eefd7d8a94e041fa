"""Code-aware features of a chunk or a query.

A feature is a short string with a role prefix:

- ``t:<word>``   a lower-cased sub-token (``getUserName`` -> get, user, name; ``snake_case`` -> snake, case) or a
  word of a comment, string or query;
- ``i:<ident>``  the original identifier, lower-cased;
- ``d:``, ``c:``, ``a:``, ``m:`` the identifier in a role: defined, called, an attribute, imported;
- ``o:<a> <b>``  an ordered pair of consecutive sub-tokens (encoded with bind/permute, not as a new symbol).

Roles are found with a few language-agnostic patterns, so one extractor serves every text file.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBTOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_DEFINE = re.compile(
    r"\b(?:def|class|function|func|fn|struct|enum|interface|trait|type|impl|module|macro|sub|proc)\s+([A-Za-z_][A-Za-z0-9_]*)"
    r"|\b(?:const|let|var|val)\s+([A-Za-z_][A-Za-z0-9_]*)"
    r"|^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=\n]*)?=(?!=)",
    re.MULTILINE,
)
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_ATTRIBUTE = re.compile(r"\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_IMPORT = re.compile(
    r"^\s*(?:from\s+([\w.]+)\s+import\s+([\w., ()*]+)|import\s+([\w., ]+)|#include\s*[<\"]([\w./]+)[>\"]"
    r"|use\s+([\w:]+)|(?:const|let|var)\s+\w+\s*=\s*require\(['\"]([^'\"]+)['\"]\))",
    re.MULTILINE,
)

_KEYWORDS = frozenset(
    "def class return if elif else for while in is not and or import from as with try except finally raise pass "
    "break continue lambda yield async await global nonlocal del assert true false none self cls function var let "
    "const new this null undefined void int str bool float public private protected static final struct enum "
    "fn pub impl mut use mod match case switch default do then end begin"
    .split()
)
STOPWORDS = frozenset(
    "a an the of to in on for and or is are was were be been being by with as at from that this these those it its "
    "into than then there their them they we you your our if else when which who whom whose what how why can could "
    "should would will shall may might must do does did done not no yes all any each every some such only also "
    "use used using return returns given get gets set sets"
    .split()
)

MAX_WORD = 40


@lru_cache(maxsize=200_000)
def _split(identifier: str) -> tuple[str, ...]:
    out = []
    for part in identifier.split("_"):
        out.extend(m.group(0).lower() for m in _SUBTOKEN.finditer(part))
    return tuple(t for t in out if len(t) <= MAX_WORD)


def split_identifier(identifier: str) -> list[str]:
    """Lower-cased sub-tokens of an identifier: ``parseHTTPResponse_v2`` -> parse, http, response, v, 2."""
    return list(_split(identifier))


def _roles(text: str, counts: Counter) -> None:
    for m in _DEFINE.finditer(text):
        name = m.group(1) or m.group(2) or m.group(3)
        if name and name.lower() not in _KEYWORDS:
            counts["d:" + name.lower()] += 1
    for m in _CALL.finditer(text):
        name = m.group(1)
        if name.lower() not in _KEYWORDS:
            counts["c:" + name.lower()] += 1
    for m in _ATTRIBUTE.finditer(text):
        counts["a:" + m.group(1).lower()] += 1
    for m in _IMPORT.finditer(text):
        for group in m.groups():
            if group:
                for name in re.findall(r"[\w.:/]+", group):
                    if name not in ("as", "import"):
                        counts["m:" + name.lower()] += 1


def code_features(text: str, path: str = "") -> Counter:
    """Feature counts of a code chunk (see the module docstring). ``path`` adds the file name's words once."""
    counts: Counter = Counter()
    previous = None
    for m in _IDENT.finditer(text):
        ident = m.group(0)
        low = ident.lower()
        if low in _KEYWORDS or len(ident) > 80:
            previous = None
            continue
        counts["i:" + low] += 1
        for sub in split_identifier(ident):
            counts["t:" + sub] += 1
            if previous is not None and previous != sub:
                counts["o:" + previous + " " + sub] += 1
            previous = sub
    _roles(text, counts)
    if path:
        for part in re.split(r"[/\\.]", path)[-3:]:
            for sub in split_identifier(part):
                if sub not in ("py", "js", "ts", "rs", "go", "c", "h", "cpp", "java"):
                    counts["t:" + sub] += 1
    return counts


_CODE_HINT = re.compile(r"[(){}\[\];=<>]|[A-Za-z_]\.[A-Za-z_]|::|->|\n\s+\S|^\s*(?:def|class|import|from|fn|func)\s",
                        re.MULTILINE)


def looks_like_code(query: str) -> bool:
    """Code punctuation, dotted names or indented lines; a sentence's own full stop does not count."""
    return bool(_CODE_HINT.search(query))


def query_features(query: str) -> Counter:
    """Features of a query, natural language or code: its words' sub-tokens without stop words, plus, for code-like
    queries, every code feature."""
    counts = code_features(query)
    if not looks_like_code(query):
        # Natural language: a word is a word, not an identifier, call or definition; drop stop words.
        counts = Counter({f: n for f, n in counts.items() if f.startswith("t:") and f[2:] not in STOPWORDS})
    for feature in [f for f in counts if f.startswith(("t:", "i:")) and f[2:] in STOPWORDS]:
        del counts[feature]
    return counts
