"""Code-aware features of a chunk or a query.

A feature is a short string with a role prefix:

- ``t:<word>``   a lower-cased sub-token (``getUserName`` -> get, user, name; ``snake_case`` -> snake, case) or a
  word of a comment, string or query;
- ``i:<ident>``  the original identifier, lower-cased;
- ``d:``, ``c:``, ``a:``, ``m:`` the identifier in a role: defined, called, an attribute, imported;
- ``o:<a> <b>``  an ordered pair of consecutive sub-tokens (encoded with bind/permute, not as a new symbol).

Roles are found with a few language-agnostic patterns, so one extractor serves every text file. The extractor works
in bulk: one ``findall`` per pattern (C speed), the features of an identifier computed once and cached, and counting
done by ``Counter.update`` over flat lists (C speed) — no Python statement per token.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBTOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Possessive quantifiers (``*+``) and a look-behind instead of re-trying inside a word keep these linear: the naive
# patterns re-scan every suffix of every identifier.
_DEFINE = re.compile(
    r"(?<![A-Za-z0-9_])(?:def|class|function|func|fn|struct|enum|interface|trait|type|impl|module|macro|sub|proc"
    r"|const|let|var|val)\s++([A-Za-z_][A-Za-z0-9_]*+)")
_ASSIGN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*+)\s*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
_CALL = re.compile(r"(?<![A-Za-z_])([A-Za-z_][A-Za-z0-9_]*+)\s*+\(")
_ATTRIBUTE = re.compile(r"\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_IMPORT = re.compile(
    r"^\s*(?:from\s+([\w.]+)\s+import\s+([\w., ()*]+)|import\s+([\w., ]+)|#include\s*[<\"]([\w./]+)[>\"]"
    r"|use\s+([\w:]+)|(?:const|let|var)\s+\w+\s*=\s*require\(['\"]([^'\"]+)['\"]\))",
    re.MULTILINE,
)
_IMPORT_NAME = re.compile(r"[\w.:/]+")

_KEYWORDS = frozenset(
    "def class return if elif else for while in is not and or import from as with try except finally raise pass "
    "break continue lambda yield async await global nonlocal del assert true false none self cls function var let "
    "const new this null undefined void int str bool float public private protected static final struct enum "
    "fn pub impl mut use mod match case switch default do then end begin"
    .split()
)
# Keywords that are also words a question uses ("return None", "the default value", "a new user"): with
# KEYWORD_WORDS they keep their word feature (never a role feature) instead of vanishing.
_WORDLIKE_KEYWORDS = frozenset(
    "true false none null undefined async await new default match case switch end begin static public private "
    "protected final int str bool float struct enum use"
    .split()
)
STOPWORDS = frozenset(
    "a an the of to in on for and or is are was were be been being by with as at from that this these those it its "
    "into than then there their them they we you your our if else when which who whom whose what how why can could "
    "should would will shall may might must do does did done not no yes all any each every some such only also "
    "use used using return returns given get gets set sets"
    .split()
)

STEM = False           # word features are stemmed (``parsing``, ``parsed``, ``parses`` -> ``pars``)
KEYWORD_WORDS = False  # word-like keywords (None, default, new, async …) keep a word feature
NAME_BOOST = 2         # extra counts of the sub-tokens of a name the chunk defines (def/class/function …)
MAX_WORD = 40
MAX_IDENT = 80
ROLE_NAME_MAX = 80          # role features (d:, c:, a:, m:) are capped like identifiers: no unbounded strings
_PATH_SKIP = frozenset(("py", "js", "ts", "rs", "go", "c", "h", "cpp", "java"))


@lru_cache(maxsize=65_536)
def _split(identifier: str) -> tuple[str, ...]:
    out = []
    for part in identifier.split("_"):
        out.extend(m.group(0).lower() for m in _SUBTOKEN.finditer(part))
    return tuple(t for t in out if len(t) <= MAX_WORD)


_KEEP_S = ("ss", "us", "is", "os")


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A light, conservative suffix stemmer for code words: plural, -ing, -ed, -ion and a final -e are cut, so
    ``validate``, ``validated``, ``validation`` and ``validates`` meet at ``validat``; short words are kept."""
    w = word
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith(_KEEP_S):
        w = w[:-1]
    for suffix, min_len in (("ing", 6), ("ed", 5), ("ion", 7)):
        if len(w) >= min_len and w.endswith(suffix):
            w = w[:-len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]          # running -> run
            break
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


_STEMMED_STOPWORDS = STOPWORDS | frozenset(stem(w) for w in STOPWORDS)


def _word(sub: str) -> str:
    return stem(sub) if STEM else sub


def split_identifier(identifier: str) -> list[str]:
    """Lower-cased sub-tokens of an identifier: ``parseHTTPResponse_v2`` -> parse, http, response, v, 2."""
    return list(_split(identifier))


# The name a unit defines, on its first lines: ``def``/``class``/``function`` …, a JS/TS method (``async name(…) {``),
# or a function bound to a name (``const name = (…) =>``).
_UNIT_NAME = re.compile(
    r"^[ \t]*(?:(?:export|default|public|private|protected|static|abstract|async|override|pub|unsafe)\s+)*"
    r"(?:(?:def|class|function\*?|func|fn|struct|enum|interface|trait|impl|module|type)\s+([A-Za-z_$][\w$]*)"
    r"|(?:get\s+|set\s+)?([A-Za-z_$][\w$]*)\s*(?:<[^>\n]*>)?\([^)\n]*\)?[^;\n]*\{\s*$"
    r"|(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=\n]*)?=\s*(?:async\s*)?(?:function|\([^)\n]*\)\s*(?::[^=\n]*)?=>|\w+\s*=>))",
    re.MULTILINE)
_NOT_A_NAME = frozenset(("if", "for", "while", "switch", "catch", "function", "return", "with", "elif"))


def unit_name(text: str) -> str | None:
    """The name the chunk's unit defines, found on its first lines (None for a block of statements)."""
    for m in _UNIT_NAME.finditer(text, 0, 600):
        name = m.group(1) or m.group(2) or m.group(3)
        if name and name not in _NOT_A_NAME:
            return name
    return None


def _roles(text: str, counts: Counter) -> None:
    if NAME_BOOST:
        name = unit_name(text)
        if name:
            counts.update(["t:" + _word(s) for s in _split(name)] * NAME_BOOST)
    defined = _DEFINE.findall(text) + _ASSIGN.findall(text)
    counts.update(["d:" + n.lower() for n in defined if len(n) <= ROLE_NAME_MAX and n.lower() not in _KEYWORDS])
    counts.update(["c:" + n.lower() for n in _CALL.findall(text)
                   if len(n) <= ROLE_NAME_MAX and n.lower() not in _KEYWORDS])
    counts.update(["a:" + n.lower() for n in _ATTRIBUTE.findall(text) if len(n) <= ROLE_NAME_MAX])
    for groups in _IMPORT.findall(text):
        for group in groups:
            if group:
                counts.update(["m:" + n.lower() for n in _IMPORT_NAME.findall(group)
                               if n not in ("as", "import") and len(n) <= ROLE_NAME_MAX])


_IDENT_INFO: dict[str, tuple] = {}
_IDENT_INFO_MAX = 200_000   # bounded: typing streams transient identifiers (fo, foo, foob…) through here


def _ident_info(ident: str) -> tuple:
    """(features one occurrence adds, first sub-token, last sub-token, breaks the order chain), cached."""
    info = _IDENT_INFO.get(ident)
    if info is None:
        low = ident.lower()
        if KEYWORD_WORDS and low in _WORDLIKE_KEYWORDS:
            info = (("t:" + _word(low),), None, None, True)
        elif low in _KEYWORDS or len(ident) > MAX_IDENT:
            info = ((), None, None, True)
        else:
            subs = _split(ident)
            feats = ("i:" + low,) + tuple("t:" + _word(s) for s in subs) + tuple(
                "o:" + a + " " + b for a, b in zip(subs, subs[1:]) if a != b)
            info = (feats, subs[0] if subs else None, subs[-1] if subs else None, False)
        if len(_IDENT_INFO) >= _IDENT_INFO_MAX:
            _IDENT_INFO.clear()
        _IDENT_INFO[ident] = info
    return info


def _lexical(text: str, counts: Counter) -> None:
    """Identifier, sub-token and order-pair features. Keywords (and over-long names) break the order chain;
    identifiers with no sub-token (``_``) are transparent to it."""
    get = _IDENT_INFO.get
    infos = [get(x) or _ident_info(x) for x in _IDENT.findall(text)]
    counts.update([f for info in infos for f in info[0]])
    chain = [info for info in infos if info[3] or info[1] is not None]
    counts.update(["o:" + a[2] + " " + b[1] for a, b in zip(chain, chain[1:])
                   if not a[3] and not b[3] and a[2] != b[1]])


def path_words(path: str) -> list[str]:
    """The words of a file's name and its two parent folders, added once to each of its chunks."""
    out = []
    for part in re.split(r"[/\\.]", path)[-3:]:
        out.extend(s for s in _split(part) if s not in _PATH_SKIP)
    return out


def code_features(text: str, path: str = "", words: list[str] | None = None) -> Counter:
    """Feature counts of a code chunk (see the module docstring). ``path`` (or its precomputed ``words``) adds the
    file name's words once."""
    counts: Counter = Counter()
    _lexical(text, counts)
    _roles(text, counts)
    for w in (words if words is not None else path_words(path) if path else ()):
        counts["t:" + _word(w)] += 1
    return counts


_ENCLOSING = re.compile(r"^(\s*)(?:export\s+)?(?:default\s+)?(?:abstract\s+)?(?:async\s+)?"
                        r"(?:class|def|function|interface|struct|impl|trait|module|namespace|enum)\s+([A-Za-z_$][\w$]*)")
CONTEXT_SCAN = 400      # lines looked at above a chunk for its enclosing definitions


def context_words(lines: list[str], start_line: int) -> list[str]:
    """Sub-tokens of the names of the definitions enclosing the chunk that starts at ``start_line`` (1-based):
    a method split out of a large class is indexed with its class's name. Found by indentation, bounded scan."""
    first = next((l for l in lines[start_line - 1:start_line + 5] if l.strip()), "")
    indent = len(first) - len(first.lstrip())
    out: list[str] = []
    for i in range(start_line - 2, max(-1, start_line - 2 - CONTEXT_SCAN), -1):
        if indent == 0:
            break
        m = _ENCLOSING.match(lines[i])
        if m and len(m.group(1)) < indent:
            out.extend(_split(m.group(2)))
            indent = len(m.group(1))
    return out


_CODE_HINT = re.compile(r"[(){}\[\];=<>]|[A-Za-z_]\.[A-Za-z_]|::|->|\n\s+\S|^\s*(?:def|class|import|from|fn|func)\s",
                        re.MULTILINE)


_CAMEL = re.compile(r"[a-z][A-Z]")


# A word of prose with the punctuation around it ("(cell)", "schema:", "authority's."); and what only a line of code
# ends with or contains (a block opener, an assignment, an arrow), or starts with (a statement keyword).
_PROSE_WORD = re.compile(r"""^["'(`]*[A-Za-z][A-Za-z'-]*[.,;:!?)"'`]*$""")
_CODE_LINE = re.compile(r"[{};:]\s*$|\s=\s|[=!]==?|=>|->|::|^\s*(?:def|class|import|from|return|if|for|while|const|let"
                        r"|var|function|async|await)\b")
PROSE_SHARE = 0.6


def is_prose(query: str) -> bool:
    """One line of mostly plain words that is not a statement: a sentence that mentions a bit of code
    (``Reports if this is before `super()`.``, ``Split the layout (stacked on top of each other).``)."""
    text = query.strip()
    tokens = text.split()
    if "\n" in text or len(tokens) < 4 or _CODE_LINE.search(text):
        return False
    return sum(1 for t in tokens if _PROSE_WORD.match(t)) >= PROSE_SHARE * len(tokens)


def looks_like_code(query: str) -> bool:
    """Code punctuation, dotted names or indented lines; a sentence's own full stop does not count, nor a sentence
    that mentions a bit of code (``is_prose``: it is a question in words)."""
    return bool(_CODE_HINT.search(query)) and not is_prose(query)


def query_features(query: str) -> Counter:
    """Features of a query, natural language or code: its words' sub-tokens without stop words, plus, for code-like
    queries, every code feature."""
    counts = code_features(query)
    if not looks_like_code(query):
        # Natural language: a word is a word, not an identifier, call or definition; drop stop words. A word shaped
        # like an identifier (snake_case, camelCase) names that identifier, so it keeps its exact-identifier feature.
        named = {"i:" + w.lower() for w in _IDENT.findall(query) if "_" in w.strip("_") or _CAMEL.search(w)}
        counts = Counter({f: n for f, n in counts.items()
                          if (f.startswith("t:") and f[2:] not in STOPWORDS) or f in named})
    stops = _STEMMED_STOPWORDS if STEM else STOPWORDS
    for feature in [f for f in counts if f.startswith(("t:", "i:")) and f[2:] in stops]:
        del counts[feature]
    return counts
