"""Context for a completion: what the code at the cursor needs from the rest of the project.

CrossCodeEval-style benchmarks (and our own oracle runs) show where a small model goes wrong at a cursor: it does
not know the signature of a function, class or method defined in another file. So the snippets are, in order:

1. the definitions of the names the cursor needs (those on its line first, then the names the file imports but
   has not used above the cursor — the likely first use — soonest used below it first, then the names of the
   lines around it), found exactly by ``Engram.find_named(name, "d")``;
2. a call site in another file of the first few (``find_named(name, "c")``), which teaches the arguments;
3. outlines of the receivers in view — the class of ``x`` in ``x = Foo(...)``, ``x: Foo``, ``self.x: Foo``, a
   parameter's annotation (the binding nearest above the cursor), what a factory ``x = Foo.make(...)`` returns,
   the bases of ``self``'s class, an imported class or project module — so an
   ``x.method(...)`` whose method name appears nowhere in the file may still meet its signature;
4. VSA-similar code (``Engram.search``) for what names cannot find — except at a member access ``x.|``, where the
   most similar chunk, narrowed to its lines most like the cursor's (``focus``), comes first: there both models copy
   a similar use of the receiver more readily than they apply its outline.

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
from functools import lru_cache

from engram_ls.retrieval import Engram, Hit

WINDOW_LINES = 15       # lines above the cursor whose names count as "near"
SUFFIX_LINES = 3        # lines below it
DEF_LINES = 8           # a definition's snippet: its first line and what follows (signature, docstring)
CALL_CONTEXT = 2        # lines either side of a call site
CALL_SITES = 3          # call sites, for the first names defined
QUERY_LINES = 12        # the VSA query: the last lines of the prefix
OUTLINES = 2            # receiver outlines
OUTLINE_MEMBERS = 8     # member lines in an outline (after its class line); 12 for ``x.|`` lost 3 of 400 hits
MEMBER_OUTLINE = 16     # member lines of the class of the receiver at ``x.|``
BASE_DEPTH = 2          # how far up a class's bases a member is looked for
FIRST_SIMILAR = 1       # at ``x.|``, similar chunks before the receiver's outline
SIMILAR_LINES = 12      # at ``x.|``, a similar chunk's lines around its line most like the cursor's
FIND_FURTHER = 256      # defining chunks read when the first four are not it (``Agent`` vs ``agent = ...``)
SIGNATURE_LINES = 40    # lines of a ``def`` read for its return annotation (one parameter a line)
RECEIVER_USES = 6       # lines of other files that read a member of a receiver named like the one at ``x.|``

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
_CHAIN_AT = re.compile(r"(?<![\w.)\]])((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)\.(\w*)$")  # the whole chain: a.b.c.|
_MADE_AT = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(\)\.(\w*)$")  # get_provider().|
# x = make(...) / x = await self.get_thing(...): its type is what the function returns
_CALLED = re.compile(r"^[ \t]*((?:self\.)?\w+)[ \t]*(?::[^=\n]*)?=[ \t]*(?:await[ \t]+)?(?:[\w.]+\.)?([a-z_]\w*)"
                     r"[ \t]*\(", re.MULTILINE)
_SUBWORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_RETURNS = re.compile(r"\)\s*->\s*([^:]+):")
_PARTIAL = re.compile(r"(?<![\w.])[A-Za-z_]\w*$")  # an identifier the cursor is still typing (not a member)
_KEYWORD_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")
_STRING = re.compile(r"(\"\"\"|''')[\s\S]*?\1|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|#[^\n]*")
_RECEIVER = re.compile(r"(?<![\w.])((?:self\.)?[A-Za-z_]\w*)\.(?=[A-Za-z_])")
_CONSTRUCTED = re.compile(r"^[ \t]*((?:self\.)?\w+)[ \t]*(?::[^=\n]*)?=[ \t]*(?:await[ \t]+)?"
                          r"(?:\w+\.)*(_*[A-Z]\w*)(?:\.(\w+))?[ \t]*\(", re.MULTILINE)
_ANNOTATED = re.compile(r"((?:self\.)?[A-Za-z_]\w*)[ \t]*:[ \t]*([\w\[\]., |\"']+?)[ \t]*(?=[=,)\n]|$)",
                        re.MULTILINE)
_ALIAS = re.compile(r"^[ \t]*((?:self\.)?\w+)[ \t]*(?::[^=\n]*)?=[ \t]*(\w+)[ \t]*$", re.MULTILINE)
_FOR_IN = re.compile(r"^[ \t]*(?:async[ \t]+)?for[ \t]+(\w+)[ \t]+in[ \t]+((?:self\.)?\w+)[ \t]*:", re.MULTILINE)
_ATTR_ALIAS = re.compile(r"^[ \t]*(\w+)[ \t]*(?::[^=\n]*)?=[ \t]*((?:self\.)?\w+(?:\.\w+)+)[ \t]*$", re.MULTILINE)
# with self.docket._pubsub() as pubsub / async with make_client(...) as client: made by that call
# (arguments with one level of nested brackets, matched without backtracking: a long line cannot make it quadratic)
_WITH_AS = re.compile(r"\bwith[ \t]+(?:await[ \t]+)?(?:[\w.]+\.)?([A-Za-z_]\w*)[ \t]*\([^()\n]*(?:\([^()\n]*\)[^()\n]*)*\)"
                      r"[ \t]+as[ \t]+(\w+)")
_FORWARD = re.compile(r"([:\[,|][ \t]*)[\"']([A-Za-z_][\w. |\[\],]*)[\"']")  # x: "Agent | None" -> x: Agent | None
_DEF_LINE = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)", re.MULTILINE)
_CLASS_LINE = re.compile(r"^([ \t]*)class[ \t]+(\w+)[ \t]*(?:\(([^)]*)\))?", re.MULTILINE)
_MEMBER = re.compile(r"(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)|(\w+)[ \t]*(?::[^=\n]+)?=(?!=)|(\w+)[ \t]*:[^\n]")
_FROM_MODULE = re.compile(r"^[ \t]*from[ \t]+([\w.]+)[ \t]+import[ \t]+\(?([\w \t,\n]+)\)?", re.MULTILINE)
COMMON = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(
    "self cls this super true false null undefined none async await typing Any Optional List Dict Set Tuple "
    "Union Callable Iterable Iterator Sequence Mapping".split())
TYPING = frozenset("Any Optional List Dict Set Tuple Union Callable Iterable Iterator Sequence Mapping Literal "
                   "Awaitable AsyncIterator AsyncGenerator Generator Type ClassVar Final Annotated None "
                   "object Exception BaseException Protocol Generic ABC".split())


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
    """The names the code at the cursor is likely to need, most likely first: imported names that complete the
    identifier being typed; those on the cursor's line (right to left); imported names not used above the cursor
    (a first use is what the file alone cannot answer) — those used nowhere in the buffer first, then those used
    soonest below it; then those of the lines above and just below it, nearest first. Names the buffer defines,
    builtins and keywords are left out."""
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

    imported = imported_names(buffer)
    above_all = "\n".join(l for l in _code(prefix).split("\n") if not _IMPORT_LINE.match(l))
    used = set(_IDENT.findall(above_all))  # used above the cursor; the first use may be the one at the cursor
    typing = _PARTIAL.search(line)
    if typing:  # a name being typed: the imported names it can still become, those not used above first
        word = typing.group(0)
        add(sorted((n for n in imported if n.startswith(word) and n != word), key=lambda n: n in used), "import")
    add(reversed(_names(_code(line))), "cursor")
    below_all = "\n".join(l for l in _code(suffix).split("\n") if not _IMPORT_LINE.match(l))
    first_below = {}
    for m in _IDENT.finditer(below_all):
        first_below.setdefault(m.group(0), m.start())
    fresh = [n for n in imported if n not in used]
    # an import the buffer uses nowhere is what the code being written is about to use (measured: the needed
    # name ranks first or second for 196 of 285 first uses of a bare name, 96 with the used-below ones first)
    add([n for n in fresh if n not in first_below], "import")
    add(sorted((n for n in fresh if n in first_below), key=first_below.__getitem__), "import")  # soonest first
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
    for hit in _defining(engram, name, exclude_path):
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


def _types(annotation: str) -> list[str]:
    """Class names an annotation or constructor mentions (``Optional[Foo] | "Bar"`` gives Foo, Bar; a private
    ``_Controller`` too)."""
    return [n for n in _IDENT.findall(annotation) if _is_class_name(n) and n not in TYPING]


def _is_class_name(name: str) -> bool:
    """``Foo`` or a private ``_Foo``: the naming of a class."""
    return name.lstrip("_")[:1].isupper()


def _typed_code(text: str) -> str:
    """``_code`` that keeps forward references: ``agent: "Agent"`` reads as ``agent: Agent``."""
    return _code(_FORWARD.sub(r"\1\2", text))


def receiver_classes(prefix: str, suffix: str, only: str | None = None) -> list[tuple[str, str]]:
    """What the objects near the cursor are: ``(kind, name)`` pairs, ``("class", Foo)`` or ``("module", name)``,
    nearest receiver first. A receiver is a name read with a dot (``x.``, ``self.x.``) in the lines around the
    cursor, or bound there with a known type; its class comes from ``x = Foo(...)``, a factory ``Foo.create(...)``
    (the pair ``("factory", "Foo.create")``: what it returns, see ``resolved``), an annotation (``x: Foo``, a
    parameter's, ``self.x: Foo``), an alias of a typed name (``self.x = x``), the bases of the enclosing class for
    ``self``, or the import itself (an imported class, or a module of the project). Imported lower-case names come
    last, as possible modules. ``only``: the pairs of that one receiver (the one before the cursor's dot)."""
    buffer = prefix + suffix
    types = dict(_bindings(prefix, suffix))
    head = prefix.rpartition("\n")[0]
    classes = list(_CLASS_LINE.finditer(head))
    if classes:  # ``self`` is an instance of the enclosing class (the last one above), so of its bases
        types["self"] = _types(classes[-1].group(3) or "")
    imported = imported_names(buffer)
    above = _code(head).split("\n")[-WINDOW_LINES:]
    below = _code(suffix).split("\n")[:SUFFIX_LINES + 1]
    order: list[str] = []
    for i in range(max(len(above), len(below))):  # nearest lines first, above before below
        for line in ([above[-1 - i]] if i < len(above) else []) + ([below[i]] if i < len(below) else []):
            order += [r for r in _RECEIVER.findall(line) + _bound_name(line) if r not in order]
    out: list[tuple[str, str]] = []
    if only is not None:
        order, types = [only], {only: types[only]} if only in types else {}
    for r in order + [r for r in types if r not in order]:
        for kind_name in ([("factory" if "." in t else "class", t) for t in types.get(r, [])]
                          or ([("class", r)] if r in imported and r[0].isupper() else
                              [("module", r)] if r in imported else [])):
            if kind_name not in out:
                out.append(kind_name)
    if only is None:  # then the imported names not seen as receivers that may be project modules
        out += [("module", r) for r in imported if r[0].islower() and ("module", r) not in out]
    return out


@lru_cache(maxsize=4)
def _bindings(prefix: str, suffix: str) -> dict[str, list[str]]:
    """Name -> the classes the buffer says it holds: the binding nearest above the cursor wins (a name is often
    rebound in each function), else the first below. Cached: one completion reads it for several receivers."""
    types: dict[str, list[str]] = {}
    for code, nearest in ((_typed_code(prefix), True), (_typed_code(suffix), False)):
        bound: list[tuple[int, str, list[str]]] = []
        for m in _CONSTRUCTED.finditer(code):
            bound.append((m.start(), m.group(1), [m.group(2) + (f".{m.group(3)}" if m.group(3) else "")]))
        for m in _ANNOTATED.finditer(code):
            found = _types(m.group(2))
            if found:
                bound.append((m.start(), m.group(1), found))
        # self.client = client: the parameter's type; for tool in self.tools: what self.tools: list[Tool] holds
        for m in list(_ALIAS.finditer(code)) + list(_FOR_IN.finditer(code)):
            bound.append((m.start(), m.group(1), ["=" + m.group(2)]))
        for _, name, found in sorted(bound, key=lambda b: b[0]):
            if found[0].startswith("="):  # an alias: the type its source has by then
                found = types.get(found[0][1:], [])
                if not found:
                    continue
            if nearest:
                types[name] = found
            else:
                types.setdefault(name, found)
    return types


def resolved(engram: Engram, pairs: list[tuple[str, str]], path: str | None) -> list[tuple[str, str]]:
    """``pairs`` with each ``("factory", "Foo.make")`` replaced by the classes ``Foo.make`` returns (its return
    annotation: ``Runner.run`` makes a ``RunResult``), or by ``Foo`` when it names none."""
    out = []
    for kind, name in pairs:
        if kind == "factory":
            cls, _, factory = name.partition(".")
            out += [("class", t) for t in member_type(engram, cls, factory, path)] or [("class", cls)]
        else:
            out.append((kind, name))
    return list(dict.fromkeys(out))


def subwords(name: str) -> frozenset[str]:
    """The lower-cased words of an identifier longer than two letters (``startAgentSpan``, ``start_agent_span``:
    start, agent, span)."""
    return frozenset(w.lower() for w in _SUBWORD.findall(name) if len(w) > 2)


def _bound_name(line: str) -> list[str]:
    """Names a line binds (an assignment's target, a parameter): receivers the next lines are likely to use."""
    m = re.match(r"[ \t]*((?:self\.)?\w+)[ \t]*(?::[^=\n]*)?=(?!=)", line)
    return [m.group(1)] if m else []


def _outline(path: str, lines: list[str], start: int, buffer_names: set[str], suffix_names: set[str],
             typed: str = "", shown_members: int = OUTLINE_MEMBERS, near: dict[str, int] | None = None) -> Hit | None:
    """The class (or module, ``start`` -1) at ``lines[start]``: its line and up to ``shown_members`` member lines
    (methods' first lines, fields, constants) of its body's first level. Members that complete the ``typed`` word
    come first, then those the buffer names only below the cursor, then those it never names: a first use is what
    the buffer cannot show — one that shares a word of weight 2 or more (the enclosing function's name) counts as
    named below; within each, those sharing most ``near`` words (``subwords`` of the code around the cursor,
    weighted: ``end_agent_span`` after ``start_agent_span``) first."""
    near = near or {}
    if start >= 0:
        indent = len(lines[start]) - len(lines[start].lstrip())
        body_indent, end = None, len(lines)
        for j in range(start + 1, len(lines)):
            text = lines[j]
            if not text.strip():
                continue
            level = len(text) - len(text.lstrip())
            if level <= indent:
                end = j
                break
            body_indent = level if body_indent is None else body_indent
        members = [j for j in range(start + 1, end) if body_indent is not None
                   and len(lines[j]) - len(lines[j].lstrip()) == body_indent]
    else:
        members = [j for j, text in enumerate(lines) if text and not text[0].isspace()]
    named, in_string = [], False
    for j in members:
        quotes = lines[j].count('"""') + lines[j].count("'''")
        was, in_string = in_string, in_string != (quotes % 2 == 1)
        if was or quotes:  # a docstring's lines are not members
            continue
        m = _MEMBER.match(lines[j].strip())
        name = m and next((g for g in m.groups() if g), None)
        if name and not name.startswith("__"):
            weights = [near.get(w, 0) for w in subwords(name)]
            rank = (-1 if typed and name.startswith(typed) else 0 if name in suffix_names
                    else 1 if name not in buffer_names else 2)
            if rank == 1 and max(weights, default=0) >= 2:
                rank = 0  # named like the function being written: as likely as a member the code uses below
            named.append((rank, -sum(weights), j))
    ranked = [j for *_, j in sorted(named)[:shown_members]]
    level = {j: i + 1 for i, j in enumerate(ranked)}  # a prompt short of room drops the lowest-ranked first
    shown = ([start] if start >= 0 else []) + sorted(ranked)
    if not shown:
        return None
    text = "\n".join(lines[j] for j in shown)
    return Hit(path, shown[0] + 1, shown[-1] + 1, 0.0, text, tuple(level.get(j, 0) for j in shown))


def receiver_outlines(engram: Engram, path: str | None, prefix: str, suffix: str, limit: int = OUTLINES,
                      pairs: list[tuple[str, str]] | None = None, typed: str = "",
                      members: int = OUTLINE_MEMBERS) -> list[Hit]:
    """Outlines of the classes and project modules of the receivers near the cursor (``receiver_classes``), or of
    the given ``pairs`` — the receiver at ``x.|``, whose class's bases are outlined too (a member is often
    inherited), its members that start with ``typed`` first."""
    out: list[Hit] = []
    buffer_names = set(_IDENT.findall(_code(prefix)))
    suffix_names = set(_IDENT.findall(_code(suffix))) - buffer_names
    buffer_names |= suffix_names
    modules = _module_paths(prefix + suffix)
    around = _code(prefix).split("\n")[-WINDOW_LINES:] + _code(suffix).split("\n")[:SUFFIX_LINES + 1]
    near = dict.fromkeys((w for name in _IDENT.findall("\n".join(around)) for w in subwords(name)), 1)
    # the function being written names what it does: ``def speech(...)`` calls ``llm._speech``, however far above
    for w in subwords(enclosing_function(prefix)):
        near[w] = near.get(w, 0) + 2
    at_cursor = pairs is not None
    queue = list(pairs if at_cursor else receiver_classes(prefix, suffix))
    seen: set[tuple[str, str]] = set()
    while queue and len(out) < limit:
        kind, name = queue.pop(0)
        if (kind, name) in seen:
            continue
        seen.add((kind, name))
        if kind == "factory":  # what it makes
            queue[:0] = resolved(engram, [(kind, name)], path)
            continue
        hit = None
        if kind == "class":
            source = find_class(engram, name, path)
            if source is not None:
                hit = _outline(source.path, source.lines, source.start, buffer_names, suffix_names, typed, members,
                               near)
                if at_cursor:
                    queue += [("class", base) for base in source.bases()]
        elif not modules.get(name, "").startswith("__future__"):
            doc = _module_document(engram, modules.get(name, name), path)
            if doc is not None:
                hit = _outline(doc, (engram.document_text(doc) or "").split("\n"), -1, buffer_names, suffix_names,
                               typed, members, near)
        if hit is not None:
            out.append(hit)
    return out


def enclosing_function(prefix: str) -> str:
    """The name of the function the cursor is in: the last ``def`` above, indented less than the cursor's line."""
    line = prefix[prefix.rfind("\n") + 1:]
    indent = len(line) - len(line.lstrip())
    for m in reversed(list(_DEF_LINE.finditer(prefix))):
        if len(m.group(1)) < indent:
            return m.group(2)
    return ""


def _module_paths(text: str) -> dict[str, str]:
    """Bound name -> dotted module path for ``from a.b import c`` (``a.b.c``, maybe a module) and ``import a.b as
    c``."""
    out = {}
    for module, names in _FROM_MODULE.findall(text):
        for part in names.replace("\n", ",").split(","):
            words = part.split()
            if words:
                out[words[-1]] = f"{module.rstrip('.')}.{words[0]}".lstrip(".")
    for group in _IMPORT.findall(text):
        for part in group.split(","):
            words = part.split()
            if len(words) == 3 and words[1] == "as":
                out[words[2]] = words[0]
    return out


def _module_document(engram: Engram, dotted: str, exclude: str | None) -> str | None:
    """The project file of a dotted module path: the document whose path ends like it, longest match first."""
    parts = dotted.split(".")
    best, best_len = None, 0
    for doc in engram.documents():
        if doc == exclude or not doc.endswith(".py"):
            continue
        stem = doc[:-3].split("/")
        if stem[-1] == "__init__":
            stem = stem[:-1]
        if not stem or stem[-1] != parts[-1]:
            continue
        n = 0
        while n < min(len(stem), len(parts)) and stem[-1 - n] == parts[-1 - n]:
            n += 1
        if n > best_len:
            best, best_len = doc, n
    return best


# -- what the receiver at ``x.|`` is: follow a chain of members through the classes they are declared in -------


@dataclass(frozen=True)
class ClassSource:
    """A class found in another file: its document, lines and the index of its ``class`` line."""

    path: str
    lines: list[str]
    start: int

    def body(self) -> range:
        """Indices of the class body's lines (up to the next line indented no deeper than the class line)."""
        indent = len(self.lines[self.start]) - len(self.lines[self.start].lstrip())
        for j in range(self.start + 1, len(self.lines)):
            text = self.lines[j]
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                return range(self.start + 1, j)
        return range(self.start + 1, len(self.lines))

    def bases(self) -> list[str]:
        m = _CLASS_LINE.match(self.lines[self.start])
        return _types(m.group(3) or "") if m else []


def _defining(engram: Engram, name: str, exclude_path: str | None):
    """Chunks defining ``name``, smallest first. The role features are lower-cased, so ``Agent`` shares them with
    every ``agent = ...``: when the first few are such assignments, look further (for a name with a capital)."""
    first = engram.find_named(name, "d", k=4, exclude_path=exclude_path)
    yield from first
    if len(first) == 4 and not name.islower():
        yield from engram.find_named(name, "d", k=FIND_FURTHER, exclude_path=exclude_path)[4:]


def find_class(engram: Engram, name: str, exclude_path: str | None) -> ClassSource | None:
    """The ``class name`` statement in another file (exact spelling)."""
    pattern = re.compile(rf"[ \t]*class[ \t]+{re.escape(name)}\b")
    for found in _defining(engram, name, exclude_path):
        for i, text in enumerate(found.text.split("\n")):
            if pattern.match(text):
                lines = (engram.document_text(found.path) or "").split("\n")
                at = found.start_line - 1 + i
                if at < len(lines):
                    return ClassSource(found.path, lines, at)
    return None


def member_type(engram: Engram, cls: str, member: str, exclude_path: str | None, depth: int = BASE_DEPTH) -> list[str]:
    """The classes of ``cls().member``, read from the class body (``member: T``, ``self.member: T``,
    ``self.member = T(...)``, ``def member(...) -> T``) or, failing that, from its bases'."""
    source = find_class(engram, cls, exclude_path)
    if source is None:
        return []
    m = re.escape(member)
    declared = re.compile(rf"[ \t]*self\.{m}[ \t]*:[ \t]*([^=\n]+)")
    field = re.compile(rf"{m}[ \t]*:[ \t]*([^=\n]+)")  # at the body's first level (not an Args: line)
    built = re.compile(rf"[ \t]*self\.{m}[ \t]*=[ \t]*(?:await[ \t]+)?(?:\w+\.)*(_*[A-Z]\w*)[ \t]*\(")
    method = re.compile(rf"[ \t]*(?:async[ \t]+)?def[ \t]+{m}\b")
    lines = source.lines
    body = source.body()
    first_level = next((len(lines[j]) - len(lines[j].lstrip()) for j in body if lines[j].strip()), 0)
    for j in body:
        text = lines[j]
        found = declared.match(text) or built.match(text) or (
            len(text) - len(text.lstrip()) == first_level and field.match(text.strip()))
        if found:
            types = _types(found.group(1))
            if types:
                return types
        if method.match(text):
            returns = _RETURNS.search(_signature(lines, j))
            if returns:
                return _types(returns.group(1))
    if depth > 0:
        for base in source.bases():
            types = member_type(engram, base, member, exclude_path, depth - 1)
            if types:
                return types
    return []


def _signature(lines: list[str], j: int) -> str:
    """The ``def`` at ``lines[j]`` up to the line ending its signature (``):``, ``) -> T:``), at most
    ``SIGNATURE_LINES`` lines: one parameter a line puts a return annotation far below the name."""
    end = j
    while end < min(len(lines), j + SIGNATURE_LINES) - 1 and not lines[end].split("#")[0].rstrip().endswith(":"):
        end += 1
    return " ".join(lines[j:end + 1])


def returned_type(engram: Engram, function: str, buffer: str, exclude_path: str | None) -> list[str]:
    """The classes a function's return annotation names: its ``def`` in the buffer, else in another file."""
    pattern = re.compile(rf"def[ \t]+{re.escape(function)}[ \t]*\(")
    texts = [buffer] + [h.text for h in engram.find_named(function, "d", k=3, exclude_path=exclude_path)]
    for text in texts:
        at = pattern.search(text)
        if at:
            returns = _RETURNS.search(text, at.end(), at.end() + 600)
            return _types(returns.group(1)) if returns else []
    return []


def chain_classes(engram: Engram, path: str | None, prefix: str, suffix: str, chain: str,
                  depth: int = 2) -> list[tuple[str, str]]:
    """What the receiver ``chain`` (``x``, ``self.x``, ``a.b.c``) at the cursor is, as ``receiver_classes``
    pairs: its head's type from the buffer (constructor, annotation, alias, the return annotation of the function
    that made it — also in ``with make() as x`` —, the chain it was read from in ``x = a.b``, or — for ``self.x`` —
    a member of ``self``'s bases), then each further member through the class that declares it."""
    parts = chain.split(".")
    head_len = 2 if parts[0] == "self" and len(parts) > 1 else 1
    head, rest = ".".join(parts[:head_len]), parts[head_len:]
    pairs = resolved(engram, receiver_classes(prefix, suffix, only=head), path)
    checked = re.findall(rf"isinstance\(\s*{re.escape(head)}\s*,\s*\(?([\w., ]+)",
                         "\n".join(prefix.split("\n")[-WINDOW_LINES:]))
    if checked:  # ``if isinstance(x, Foo) and x.|``: the nearest check says most
        pairs = [("class", t) for t in _types(checked[-1])] + pairs
    if not pairs:
        buffer = prefix + suffix
        code = _code(buffer)
        made = {m.group(1): m.group(2) for m in _CALLED.finditer(code)}
        for function, name in _WITH_AS.findall(code):
            made.setdefault(name, function)
        read_from = dict(_ATTR_ALIAS.findall(code))  # agent = tool_context.agent
        if head in made:
            function = made[head]
            pairs = ([("class", function)] if _is_class_name(function) else
                     [("class", t) for t in returned_type(engram, function, buffer, path)])
        elif head in read_from and depth > 0:
            pairs = chain_classes(engram, path, prefix, suffix, read_from[head], depth - 1)
        elif head_len == 2:  # self.x: declared by a base of the enclosing class
            for _, base in receiver_classes(prefix, suffix, only="self"):
                pairs = [("class", t) for t in member_type(engram, base, parts[1], path)]
                if pairs:
                    break
    pairs = pairs or _named_like(engram, parts[head_len - 1], path)
    for member in rest:
        pairs = [("class", t) for kind, name in pairs if kind == "class"
                 for t in member_type(engram, name, member, path)] or _named_like(engram, member, path)
    return list(dict.fromkeys(pairs))


def receiver_uses(engram: Engram, path: str | None, name: str) -> list[Hit]:
    """Lines of other files that read members of a receiver spelled ``name`` (``execution.key``), one line per
    member, at most ``RECEIVER_USES``: how the project uses such an object, when its class is not found or to
    show its idiom (the other call sites of a name teach as much as its definition)."""
    if name in ("self", "cls"):
        return []
    use = re.compile(rf"(?<![\w.]){re.escape(name)}\.([A-Za-z_]\w*)")
    out: list[Hit] = []
    members: set[str] = set()
    for hit in engram.find_named(name, "i", k=8, exclude_path=path):
        lines = hit.text.split("\n")
        shown = []
        for i, text in enumerate(lines):
            fresh = [m for m in use.findall(_code(text)) if m not in members]
            if fresh and len(members) < RECEIVER_USES:
                members.update(fresh)
                shown.append(i)
        if shown:
            out.append(Hit(hit.path, hit.start_line + shown[0], hit.start_line + shown[-1], 0.0,
                           "\n".join(lines[i] for i in shown)))
    return out


def focus(hit: Hit, prefix: str, lines: int | None = None) -> Hit:
    """The ``lines`` lines of a similar chunk around the line sharing most names with the code before the cursor
    (its own line counting twice): the use to copy, not the whole function, so the receiver's outline still fits."""
    lines = lines or SIMILAR_LINES
    text = hit.text.split("\n")
    if len(text) <= lines:
        return hit
    near = prefix.split("\n")[-3:]
    weight = {n: 1 for line in near[:-1] for n in _names(_code(line))} | {n: 2 for n in _names(_code(near[-1]))}
    scores = [sum(weight.get(n, 0) for n in set(_names(_code(line)))) for line in text]
    best = scores.index(max(scores))
    before = lines * 2 // 3
    lo = min(max(0, best - before), len(text) - lines)
    return _narrow(hit, lo, 0, lines - 1)


def _named_like(engram: Engram, name: str, exclude_path: str | None) -> list[tuple[str, str]]:
    """``execution`` is most likely an ``Execution``, ``self._event_queue`` an ``EventQueue``: the naming
    convention, where the project has such a class."""
    guess = "".join(w.capitalize() for w in name.split("_"))
    return [("class", guess)] if guess and find_class(engram, guess, exclude_path) is not None else []


class _Asked:
    """One completion's view of the index, which answers each question once: following receivers through classes
    and bases asks for the same definitions and documents again and again."""

    def __init__(self, engram: Engram):
        self._engram = engram
        self._named: dict[tuple, list[Hit]] = {}
        self._texts: dict[str, str | None] = {}

    def find_named(self, name: str, role: str = "d", k: int = 10, exclude_path: str | None = None) -> list[Hit]:
        key = (name, role, k, exclude_path)
        if key not in self._named:
            self._named[key] = self._engram.find_named(name, role, k=k, exclude_path=exclude_path)
        return self._named[key]

    def document_text(self, path: str) -> str | None:
        if path not in self._texts:
            self._texts[path] = self._engram.document_text(path)
        return self._texts[path]

    def __getattr__(self, name: str):
        return getattr(self._engram, name)


def completion_hits(engram: Engram, path: str | None, prefix: str, suffix: str, *, named: int = 6,
                    similar: int = 3) -> list[Hit]:
    """Snippets for a completion at the end of ``prefix`` in the document ``path``, most useful first: up to
    ``named`` definitions, call sites of the first ``CALL_SITES`` of them, receiver outlines, and ``similar``
    VSA hits — which come first at ``x.|``. Never from the document itself; no span twice (an outline may overlap
    a definition)."""
    engram = _Asked(engram)  # type: ignore[assignment]
    out: list[Hit] = []
    spans: list[tuple[str, int, int]] = []

    def keep(hit: Hit | None, overlap: bool = False) -> bool:
        """``overlap``: an outline may share lines with a snippet already kept, if it shows a line none shows."""
        if hit is None:
            return False
        if overlap:
            shown = {line for h in out if h.path == hit.path for line in h.text.split("\n")}
            if all(line in shown for line in hit.text.split("\n")):
                return False
        elif any(p == hit.path and s <= hit.end_line and hit.start_line <= e for p, s, e in spans):
            return False
        out.append(hit)
        spans.append((hit.path, hit.start_line, hit.end_line))
        return True

    query = "\n".join(prefix.split("\n")[-QUERY_LINES:])
    found = iter([h for h in engram.search(query, similar + 4) if h.path != path]
                 if similar > 0 and query.strip() else [])
    added = 0

    def similar_code(narrow: bool, upto: int) -> None:
        """Keeps similar hits, in rank order, until ``upto`` of them are kept in all."""
        nonlocal added
        while added < upto and (hit := next(found, None)) is not None:
            added += keep(focus(hit, prefix) if narrow else hit)

    line = prefix[prefix.rfind("\n") + 1:]
    member, made = _CHAIN_AT.search(line), _MADE_AT.search(line)
    at_member = bool(member or made)
    if at_member:
        # ``x.|``: the most similar use first (narrowed, so the rest still fits), then what x is. Both models copy a
        # use more readily than they apply an outline. Exact match over none on the absent targets (1.5B / 0.5B):
        # outlines first 1.71x / 1.23x; all similar code first 1.88x / 2.09x, the definition packed for 0.27;
        # this order 2.12x / 2.0x, the definition packed for 0.48 (bench/results/completion_eval-absent-*).
        similar_code(narrow=True, upto=min(similar, FIRST_SIMILAR))
        pairs = (chain_classes(engram, path, prefix, suffix, member.group(1)) if member else
                 [("class", t) for t in returned_type(engram, made.group(1), prefix + suffix, path)])
        member = member or made
        for hit in receiver_outlines(engram, path, prefix, suffix, limit=1 + BASE_DEPTH, pairs=pairs,
                                     typed=member.group(2), members=MEMBER_OUTLINE):
            keep(hit, overlap=True)
        for hit in receiver_uses(engram, path, member.group(1).rsplit(".", 1)[-1]):
            keep(hit, overlap=True)
    defined = []
    for candidate in cursor_names(prefix, suffix):
        if len(defined) >= named:
            break
        if keep(definition(engram, candidate.name, path)):
            defined.append(candidate.name)
    for name in defined[:CALL_SITES]:  # after every definition: a small prompt keeps the definitions
        keep(call_site(engram, name, path))
    # Receiver outlines last but for similar code: measured, any earlier place cost more definitions (which most
    # targets need) than the outlines found members (bench/results/completion_hits-receivers.md)
    for hit in receiver_outlines(engram, path, prefix, suffix):
        keep(hit, overlap=True)
    similar_code(narrow=at_member, upto=similar)
    return out
