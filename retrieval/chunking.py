"""Splits a document into retrievable chunks with 1-based inclusive line ranges.

Code is cut along its syntax tree (tree-sitter; Python, JavaScript, TypeScript/TSX, Go, Rust, Java, C, C++, Ruby):
each top-level definition is a unit (with the comments right above it), a large class-like unit is split into its
members, and the runs of other top-level statements between units are cut into paragraphs. Tree-sitter's error
recovery keeps a syntax error local: the broken region becomes a module block and the rest of the file keeps its
units. Markdown is cut at headings, then paragraphs; other text by paragraphs (blank lines that return to the outer
indentation). Long units are windowed with overlap so no chunk exceeds ``MAX_LINES``.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from dataclasses import dataclass

# tree-sitter's parse holds the GIL for its whole run (measured: a 1.2 MB file stalled another thread 1.9 s on a
# loaded machine), so a file indexed in the background is parsed only up to this size; a larger one (generated or
# vendored code, mostly) is cut at paragraphs. A file open in the editor is always parsed.
PARSE_MAX_BYTES = 96 * 1024
MAX_LINES = 60
TARGET_LINES = 30
OVERLAP = 8

# suffix -> (grammar module, function returning the language)
GRAMMARS = {
    ".py": ("tree_sitter_python", "language"), ".pyi": ("tree_sitter_python", "language"),
    ".js": ("tree_sitter_javascript", "language"), ".jsx": ("tree_sitter_javascript", "language"),
    ".mjs": ("tree_sitter_javascript", "language"), ".cjs": ("tree_sitter_javascript", "language"),
    ".ts": ("tree_sitter_typescript", "language_typescript"), ".mts": ("tree_sitter_typescript", "language_typescript"),
    ".tsx": ("tree_sitter_typescript", "language_tsx"),
    ".go": ("tree_sitter_go", "language"), ".rs": ("tree_sitter_rust", "language"),
    ".java": ("tree_sitter_java", "language"),
    ".c": ("tree_sitter_c", "language"), ".h": ("tree_sitter_c", "language"),
    ".cc": ("tree_sitter_cpp", "language"), ".cpp": ("tree_sitter_cpp", "language"),
    ".cxx": ("tree_sitter_cpp", "language"), ".hpp": ("tree_sitter_cpp", "language"),
    ".hh": ("tree_sitter_cpp", "language"),
    ".rb": ("tree_sitter_ruby", "language"),
}
MARKDOWN_SUFFIXES = (".md", ".markdown", ".rst")

# Top-level node types that are units of their own, in any of the grammars above.
UNIT_TYPES = frozenset({
    "function_definition", "class_definition", "decorated_definition", "function_declaration",
    "generator_function_declaration", "class_declaration", "abstract_class_declaration", "method_definition",
    "interface_declaration", "enum_declaration", "record_declaration", "annotation_type_declaration",
    "method_declaration", "constructor_declaration", "type_declaration", "module", "internal_module",
    "struct_item", "impl_item", "function_item", "trait_item", "mod_item", "enum_item", "union_item", "macro_definition",
    "class_specifier", "struct_specifier", "union_specifier", "enum_specifier", "namespace_definition",
    "template_declaration", "class", "method", "singleton_method", "singleton_class",
})
# Nodes that are units only when they span several lines (``const f = () => {…}``, ``export …``).
MULTILINE_UNIT_TYPES = frozenset({"lexical_declaration", "variable_declaration", "export_statement",
                                  "type_alias_declaration", "expression_statement"})
MULTILINE_UNIT_MIN = 4
CLASS_WORDS = ("class", "struct", "impl", "interface", "trait", "enum", "module", "namespace", "union", "record")


@dataclass(frozen=True)
class Chunk:
    """A unit of retrieval: ``start_line``..``end_line`` are 1-based and inclusive; ``digest`` hashes the text."""

    path: str
    start_line: int
    end_line: int
    digest: str
    kind: str = "block"
    symbol: str = ""


def lines_of(text: str) -> list[str]:
    """Lines as editors number them (LSP: \\n, \\r\\n and \\r end a line; form feeds and other Unicode breaks do
    not), without a trailing empty line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def digest_int(text: str) -> int:
    """A 64-bit content hash of a chunk's text (the chunk table stores it as uint64)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def digest_of(text: str) -> str:
    return f"{digest_int(text):016x}"


# -- parsers ------------------------------------------------------------------------------------------------------
_languages: dict[str, object] = {}
_local = threading.local()


def grammar_for(path: str) -> tuple[str, str] | None:
    dot = path.rfind(".")
    return GRAMMARS.get(path[dot:].lower()) if dot >= 0 else None


def parser_for(path: str):
    """A tree-sitter parser for the file's language (one per thread), or None (no grammar, or not installed)."""
    grammar = grammar_for(path)
    if grammar is None:
        return None
    parsers = _local.__dict__.setdefault("parsers", {})
    if grammar not in parsers:
        parser = None
        try:
            import tree_sitter

            if grammar not in _languages:
                module = importlib.import_module(grammar[0])
                _languages[grammar] = tree_sitter.Language(getattr(module, grammar[1])())
            parser = tree_sitter.Parser(_languages[grammar])
        except (ImportError, AttributeError, ValueError):
            parser = None
        parsers[grammar] = parser
    return parsers[grammar]


# -- generic text -------------------------------------------------------------------------------------------------
def _window(start: int, end: int) -> list[tuple[int, int]]:
    """Cuts lines start..end (1-based, inclusive) into windows of at most MAX_LINES with OVERLAP."""
    if end - start + 1 <= MAX_LINES:
        return [(start, end)]
    spans = []
    step = MAX_LINES - OVERLAP
    s = start
    while True:
        e = min(s + MAX_LINES - 1, end)
        spans.append((s, e))
        if e >= end:
            return spans
        s += step


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _paragraphs(lines: list[str], first: int, last: int) -> list[tuple[int, int]]:
    """Paragraph spans over lines[first-1:last] (1-based, inclusive), merged towards TARGET_LINES and windowed."""
    paragraphs: list[tuple[int, int]] = []
    start = None
    base = 0
    for n in range(first, last + 1):
        line = lines[n - 1]
        blank = not line.strip()
        if start is None:
            if not blank:
                start, base = n, _indent(line)
            continue
        if blank:
            nxt = next((m for m in range(n + 1, last + 1) if lines[m - 1].strip()), None)
            if nxt is None or _indent(lines[nxt - 1]) <= base:
                paragraphs.append((start, n - 1))
                start = None
    if start is not None:
        end = last
        while end > start and not lines[end - 1].strip():
            end -= 1
        paragraphs.append((start, end))
    merged: list[tuple[int, int]] = []
    for s, e in paragraphs:
        if merged and (e - merged[-1][0] + 1) <= TARGET_LINES:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return [w for ms, me in merged for w in _window(ms, me)]


def _markdown_spans(lines: list[str]) -> list[tuple[int, int, str, str]]:
    heads = [n for n, line in enumerate(lines, 1) if line.startswith("#") and line.lstrip("#").startswith(" ")]
    bounds = ([1] if not heads or heads[0] != 1 else []) + heads + [len(lines) + 1]
    spans = []
    for a, b in zip(bounds, bounds[1:]):
        title = lines[a - 1].lstrip("#").strip() if a in heads else ""
        spans.extend((s, e, "section", title) for s, e in _paragraphs(lines, a, b - 1))
    return spans


# -- syntax trees -------------------------------------------------------------------------------------------------
def _rows(node) -> tuple[int, int]:
    """1-based first and last line of a node (a node ending at column 0 ends on the line before)."""
    start = node.start_point[0] + 1
    end_row, end_col = node.end_point
    end = end_row if end_col == 0 and end_row > node.start_point[0] else end_row + 1
    return start, end


def _inner(node):
    """The declaration inside a wrapper (decorators, ``export``, templates)."""
    for field in ("definition", "declaration"):
        inner = node.child_by_field_name(field)
        if inner is not None:
            return inner
    return node


def _name(node) -> str:
    node = _inner(node)
    for field in ("name", "type"):
        n = node.child_by_field_name(field)
        if n is not None and (n.type.endswith("identifier") or n.type in ("constant", "type")):
            return n.text.decode("utf-8", "replace")
    declarator = node.child_by_field_name("declarator")
    depth = 0
    while declarator is not None and depth < 6:
        if declarator.type in ("identifier", "field_identifier", "qualified_identifier", "destructor_name"):
            return declarator.text.decode("utf-8", "replace")
        declarator = declarator.child_by_field_name("declarator") or declarator.child_by_field_name("name")
        depth += 1
    for child in node.named_children:
        if child.type == "variable_declarator":
            n = child.child_by_field_name("name")
            return n.text.decode("utf-8", "replace") if n is not None else ""
    return ""


def _is_unit(node) -> bool:
    if node.type in UNIT_TYPES:
        return True
    if node.type in MULTILINE_UNIT_TYPES:
        start, end = _rows(node)
        return end - start + 1 >= MULTILINE_UNIT_MIN
    return False


def _kind(node) -> str:
    t = _inner(node).type
    return "class" if any(w in t for w in CLASS_WORDS) else "function"


def _members(node) -> list:
    body = _inner(node).child_by_field_name("body")
    if body is None:
        return []
    return [c for c in body.named_children if _is_unit(c) and _kind(c) == "function"]


def _unit_spans(lines: list[str], node, start: int, end: int) -> list[tuple[int, int, str, str]]:
    name, kind = _name(node), _kind(node)
    members = _members(node) if end - start + 1 > MAX_LINES and kind == "class" else []
    if not members:
        return [(s, e, kind, name) for s, e in _window(start, end)]
    spans = []
    cursor = start
    for m in members:
        m_start, m_end = _rows(m)
        m_start = _leading_comments(lines, m_start, cursor)
        if m_start > cursor:
            spans.extend((s, e, "class", name) for s, e in _paragraphs(lines, cursor, m_start - 1))
        member = f"{name}.{_name(m)}" if name else _name(m)
        spans.extend((s, e, "method", member) for s, e in _window(m_start, m_end))
        cursor = max(cursor, m_end + 1)
    if cursor <= end:
        spans.extend((s, e, "class", name) for s, e in _paragraphs(lines, cursor, end))
    return spans


_COMMENT_STARTS = ("#", "//", "/*", "*", "--", ";")


def _leading_comments(lines: list[str], start: int, floor: int) -> int:
    """Moves a unit's start up over the comment lines directly above it (not above ``floor``)."""
    while start - 1 >= floor and start >= 2 and lines[start - 2].lstrip().startswith(_COMMENT_STARTS) \
            and not lines[start - 2].lstrip().startswith("#!"):
        start -= 1
    return start


def _tree_spans(lines: list[str], root) -> list[tuple[int, int, str, str]]:
    """Units along the top level of a syntax tree; everything between units is cut into module paragraphs, so
    every non-blank line is in some chunk."""
    spans: list[tuple[int, int, str, str]] = []
    cursor = 1          # first line not yet assigned

    def module_block(upto: int) -> None:
        if upto >= cursor and any(lines[n - 1].strip() for n in range(cursor, upto + 1)):
            spans.extend((s, e, "module", "") for s, e in _paragraphs(lines, cursor, upto))

    for node in root.children:
        if not _is_unit(node):
            continue
        start, end = _rows(node)
        if start < cursor:          # overlaps what is already assigned (nested error recovery)
            start = cursor
        if end < start:
            continue
        start = _leading_comments(lines, start, cursor)
        module_block(start - 1)
        spans.extend(_unit_spans(lines, node, start, end))
        cursor = end + 1
    module_block(len(lines))
    return spans


def spans_for(path: str, lines: list[str], tree=None) -> list[tuple[int, int, str, str]]:
    """``(start_line, end_line, kind, symbol)`` of each chunk, in line order. ``tree``: an already parsed tree of
    ``"\\n".join(lines)`` (the incremental path passes its own)."""
    if not lines:
        return []
    if tree is None:
        parser = parser_for(path)
        data = "\n".join(lines).encode("utf-8", "surrogatepass") if parser is not None else b""
        if parser is not None and len(data) <= PARSE_MAX_BYTES:
            tree = parser.parse(data)
    if tree is not None:
        spans = _tree_spans(lines, tree.root_node)
        if spans:
            return spans
    if path.lower().endswith(MARKDOWN_SUFFIXES):
        return _markdown_spans(lines)
    return [(s, e, "block", "") for s, e in _paragraphs(lines, 1, len(lines))]


def chunk_spans(path: str, text: str) -> list[tuple[int, int, str, str]]:
    return spans_for(path, lines_of(text))


def chunk_text(lines: list[str], start_line: int, end_line: int) -> str:
    return "\n".join(lines[start_line - 1:end_line])


def chunk_document(path: str, text: str) -> list[Chunk]:
    """The chunks of a document."""
    lines = lines_of(text)
    return [Chunk(path, s, e, digest_of(chunk_text(lines, s, e)), kind, symbol)
            for s, e, kind, symbol in spans_for(path, lines)]
