"""Splits a document into retrievable chunks with 1-based inclusive line ranges.

Python files are cut along the syntax tree (functions, classes, methods of large classes, runs of module-level
statements). Every other text file — and Python that does not parse, as it often does mid-edit — is cut by a
language-agnostic rule: paragraphs separated by blank lines that return to the outer indentation, merged up to a
target size. Long units are windowed with overlap so no chunk exceeds ``MAX_LINES``.
"""

from __future__ import annotations

import ast
import hashlib
import warnings
from dataclasses import dataclass

MAX_LINES = 60
TARGET_LINES = 30
OVERLAP = 8
PYTHON_SUFFIXES = (".py", ".pyi")


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


def digest_of(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


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


def _generic_spans(lines: list[str], first: int, last: int) -> list[tuple[int, int, str]]:
    """Paragraph spans over lines[first-1:last] (1-based, inclusive), merged towards TARGET_LINES."""
    paragraphs: list[tuple[int, int]] = []
    start = None
    base = None
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
    return [(s, e, "block") for ms, me in merged for s, e in _window(ms, me)]


def _python_spans(lines: list[str], tree: ast.Module) -> list[tuple[int, int, str, str]]:
    """Units along the syntax tree. Comment lines belong to the unit below them (a function's leading comments)
    or to the surrounding module block, so every non-blank line is in some chunk."""
    spans: list[tuple[int, int, str, str]] = []
    pending: list[tuple[int, int]] = []
    cursor = 1  # first line not yet assigned to a unit

    def flush() -> None:
        if pending:
            for s, e, _ in _generic_spans(lines, pending[0][0], pending[-1][1]):
                spans.append((s, e, "module", ""))
            pending.clear()

    def leading_comments(start: int) -> int:
        while start - 1 >= cursor and lines[start - 2].lstrip().startswith("#"):
            start -= 1
        return start

    for node in tree.body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        end = node.end_lineno or node.lineno
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = leading_comments(start)
            if any(lines[n - 1].strip() for n in range(cursor, start)):
                pending.append((cursor, start - 1))
            flush()
            if isinstance(node, ast.ClassDef):
                spans.extend(_class_spans(lines, node, start, end))
            else:
                spans.extend((s, e, "function", node.name) for s, e in _window(start, end))
        else:
            pending.append((cursor, end))
        cursor = end + 1
    if any(lines[n - 1].strip() for n in range(cursor, len(lines) + 1)):
        pending.append((cursor, len(lines)))
    flush()
    return spans


def _class_spans(lines: list[str], node: ast.ClassDef, start: int, end: int) -> list[tuple[int, int, str, str]]:
    if end - start + 1 <= MAX_LINES:
        return [(start, end, "class", node.name)]
    spans = []
    methods = [m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
    cursor = start
    for m in methods:
        m_start = min([m.lineno] + [d.lineno for d in m.decorator_list])
        while m_start - 1 > cursor and lines[m_start - 2].lstrip().startswith("#"):
            m_start -= 1
        m_end = m.end_lineno or m.lineno
        if m_start > cursor:
            spans.extend((s, e, "class", node.name) for s, e, _ in _generic_spans(lines, cursor, m_start - 1))
        spans.extend((s, e, "method", f"{node.name}.{m.name}") for s, e in _window(m_start, m_end))
        cursor = m_end + 1
    if cursor <= end:
        spans.extend((s, e, "class", node.name) for s, e, _ in _generic_spans(lines, cursor, end))
    return spans


def chunk_spans(path: str, text: str) -> list[tuple[int, int, str, str]]:
    """``(start_line, end_line, kind, symbol)`` for each chunk of a document, in line order."""
    lines = lines_of(text)
    if not lines:
        return []
    if path.endswith(PYTHON_SUFFIXES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None
        if tree is not None:
            spans = [s for s in _python_spans(lines, tree) if any(lines[n - 1].strip() for n in range(s[0], s[1] + 1))]
            if spans:
                return spans
    return [(s, e, kind, "") for s, e, kind in _generic_spans(lines, 1, len(lines))]


def chunk_text(lines: list[str], start_line: int, end_line: int) -> str:
    return "\n".join(lines[start_line - 1:end_line])


def chunk_document(path: str, text: str) -> list[Chunk]:
    """The chunks of a document."""
    lines = lines_of(text)
    return [
        Chunk(path, s, e, digest_of(chunk_text(lines, s, e)), kind, symbol)
        for s, e, kind, symbol in chunk_spans(path, text)
    ]
