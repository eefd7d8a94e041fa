"""Context for a completion: what the code at the cursor needs from the rest of the project.

CrossCodeEval-style benchmarks (and our own oracle runs) show where a small model goes wrong at a cursor: it does
not know the signature of a function, class or method defined in another file. So the snippets are, in order:

1. the definitions of the names the cursor needs (those on its line first, then the names the file imports but
   has not used above the cursor — the likely first use — soonest used below it first, then the names of the
   lines around it), found exactly by ``Engram.find_named(name, "d")``;
2. a call site in another file of the first few (``find_named(name, "c")``), which teaches the arguments;
3. VSA-similar code (``Engram.search``) for what names cannot find.

Each snippet is narrowed to the lines that matter (a definition's signature and docstring, a call's neighbours),
so a dozen fit where two whole classes would not. The prompt builder packs them by the model's own token count in
this order and lays them out in a stable order. The file being completed is never a source: its buffer is the
local window.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass

from engram_ls.retrieval import Engram, Hit

WINDOW_LINES = 15       # lines above the cursor whose names count as "near"
SUFFIX_LINES = 3        # lines below it
DEF_LINES = 8           # a definition's snippet: its first line and what follows (signature, docstring)
CALL_CONTEXT = 2        # lines either side of a call site
CALL_SITES = 3          # call sites, for the first names defined
QUERY_LINES = 12        # the VSA query: the last lines of the prefix

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT_FROM = re.compile(r"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]+([\w \t,]+)$", re.MULTILINE)
_IMPORT_FROM_PAREN = re.compile(r"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]*\(([^)]*)\)", re.MULTILINE)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w., \t]+)$", re.MULTILINE)
_JS_IMPORT = re.compile(r"^\s*import\s*\{([^}]*)\}\s*from", re.MULTILINE)
_LOCAL_DEF = re.compile(r"(?:\bdef|\bclass|\bfunction|\bconst|\blet|\bvar)\s+([A-Za-z_][A-Za-z0-9_]*)"
                        r"|^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
_PARAMS = re.compile(r"\b(?:def|function)\s+\w+\s*\(([^)]*)\)")
_PARAM = re.compile(r"\s*\**([A-Za-z_][A-Za-z0-9_]*)")
_BOUND = re.compile(r"\bfor\s+([\w, ()]+?)\s+in\b|\bas\s+([A-Za-z_]\w*)|\blambda\s+([\w, ]*):")
_IMPORT_LINE = re.compile(r"\s*(from|import)\b")
_KEYWORD_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")
_STRING = re.compile(r"(\"\"\"|''')[\s\S]*?\1|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|#[^\n]*")
COMMON = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(
    "self cls this super true false null undefined none async await typing Any Optional List Dict Set Tuple "
    "Union Callable Iterable Iterator Sequence Mapping".split())


@dataclass(frozen=True)
class Candidate:
    name: str
    why: str   # "cursor", "near" or "import": where it was seen (for tests and the bench's diagnostics)


def _code(text: str) -> str:
    """Text with strings and comments blanked (their words are not names the code uses)."""
    return _STRING.sub(lambda m: " " * len(m.group(0)), text)


def _names(line: str) -> list[str]:
    """Identifiers of a line of code, less keyword-argument and assignment targets (``f(create=False)``)."""
    targets = set(_KEYWORD_ARG.findall(line))
    return [n for n in _IDENT.findall(line) if n not in targets]


def imported_names(text: str) -> list[str]:
    """Names a file imports (``from m import a, b as c`` gives a and c; ``import x.y`` gives x), in file order."""
    names: list[str] = []
    for pattern in (_IMPORT_FROM_PAREN, _IMPORT_FROM, _JS_IMPORT):
        for group in pattern.findall(text):
            for part in group.replace("\n", ",").split(","):
                words = part.split()
                if words:
                    names.append(words[-1])  # the name as bound: ``a as c`` binds c
    for group in _IMPORT.findall(text):
        for part in group.split(","):
            words = part.split()
            if words:
                names.append(words[-1] if "as" in words else words[0].split(".")[0])
    return list(dict.fromkeys(n for n in names if _IDENT.fullmatch(n)))


def local_names(text: str) -> set[str]:
    """Names the buffer binds itself (functions, classes, assignments, parameters, loop and ``as`` variables):
    their definitions are already in view."""
    names = {a or b for a, b in _LOCAL_DEF.findall(text)}
    for params in _PARAMS.findall(text):
        names.update(m.group(1) for m in (_PARAM.match(p) for p in params.split(",")) if m)
    for groups in _BOUND.findall(text):
        names.update(_IDENT.findall(" ".join(groups)))
    return names


def cursor_names(prefix: str, suffix: str) -> list[Candidate]:
    """The names the code at the cursor is likely to need, most likely first: those on the cursor's line (right to
    left); imported names not used above the cursor (a first use is what the file alone cannot answer), the ones
    used soonest below it first; then those of the lines above and just below it, nearest first. Names the buffer
    defines, builtins and keywords are left out."""
    buffer = prefix + suffix
    local = local_names(buffer) - set(imported_names(buffer))
    head, _, line = prefix.rpartition("\n")
    above = _code(head).split("\n")[-WINDOW_LINES:]
    below = _code(suffix).split("\n")[:SUFFIX_LINES + 1]
    seen: dict[str, Candidate] = {}

    def add(names, why):
        for name in names:
            if name not in seen and name not in COMMON and name not in local and len(name) > 1:
                seen[name] = Candidate(name, why)

    add(reversed(_names(_code(line))), "cursor")
    above_all = "\n".join(l for l in _code(prefix).split("\n") if not _IMPORT_LINE.match(l))
    used = set(_IDENT.findall(above_all))  # used above the cursor; the first use may be the one at the cursor
    below_all = _code(suffix)
    first_below = {}
    for m in _IDENT.finditer(below_all):
        first_below.setdefault(m.group(0), m.start())
    fresh = [n for n in imported_names(buffer) if n not in used]
    add(sorted(fresh, key=lambda n: first_below.get(n, len(below_all))), "import")  # used soonest below first
    near = [_names(l) for l in reversed(above) if not _IMPORT_LINE.match(l)]
    below_names = [_names(l) for l in below if not _IMPORT_LINE.match(l)]
    for i in range(max(len(near), len(below_names))):  # nearest lines first, above before below
        if i < len(near):
            add(reversed(near[i]), "near")
        if i < len(below_names):
            add(below_names[i], "near")
    return list(seen.values())


def _defines(line: str, name: str) -> bool:
    """Whether a line defines ``name`` with that exact spelling (the role features are lower-cased): a def, class
    or declaration anywhere, or an assignment at the top level (not a local variable of the same name)."""
    n = re.escape(name)
    return re.search(rf"\b(?:def|class|function|func|fn|struct|interface|type|const|let|var)\s+{n}\b", line) \
        is not None or re.match(rf"{n}\s*(?::[^=\n]*)?=(?!=)", line) is not None


def _narrow(hit: Hit, line_index: int, before: int, after: int) -> Hit:
    lines = hit.text.split("\n")
    lo, hi = max(0, line_index - before), min(len(lines), line_index + after + 1)
    return Hit(hit.path, hit.start_line + lo, hit.start_line + hi - 1, hit.score, "\n".join(lines[lo:hi]))


def definition(engram: Engram, name: str, exclude_path: str | None) -> Hit | None:
    """The definition of ``name`` elsewhere, narrowed to its first ``DEF_LINES`` lines (exact spelling)."""
    for hit in engram.find_named(name, "d", k=4, exclude_path=exclude_path):
        for i, line in enumerate(hit.text.split("\n")):
            if _defines(line, name):
                return _narrow(hit, i, 0, DEF_LINES - 1)
    return None


def call_site(engram: Engram, name: str, exclude_path: str | None) -> Hit | None:
    """Another file's call of ``name``, with ``CALL_CONTEXT`` lines either side."""
    call = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}\s*\(")
    for hit in engram.find_named(name, "c", k=4, exclude_path=exclude_path):
        for i, line in enumerate(hit.text.split("\n")):
            if call.search(line):
                return _narrow(hit, i, CALL_CONTEXT, CALL_CONTEXT)
    return None


def completion_hits(engram: Engram, path: str | None, prefix: str, suffix: str, *, named: int = 6,
                    similar: int = 3) -> list[Hit]:
    """Snippets for a completion at the end of ``prefix`` in the document ``path``, most useful first: up to
    ``named`` definitions, call sites of the first ``CALL_SITES`` of them, and ``similar`` VSA hits. Never from
    the document itself; no span twice."""
    out: list[Hit] = []
    spans: list[tuple[str, int, int]] = []

    def keep(hit: Hit | None) -> bool:
        if hit is None or any(p == hit.path and s <= hit.end_line and hit.start_line <= e for p, s, e in spans):
            return False
        out.append(hit)
        spans.append((hit.path, hit.start_line, hit.end_line))
        return True

    defined = []
    for candidate in cursor_names(prefix, suffix):
        if len(defined) >= named:
            break
        if keep(definition(engram, candidate.name, path)):
            defined.append(candidate.name)
    for name in defined[:CALL_SITES]:  # after every definition: a small prompt keeps the definitions
        keep(call_site(engram, name, path))
    if similar > 0:
        query = "\n".join(prefix.split("\n")[-QUERY_LINES:])
        if query.strip():
            found = [h for h in engram.search(query, similar + 4) if h.path != path]
            added = 0
            for hit in found:
                if added < similar and keep(hit):
                    added += 1
    return out
