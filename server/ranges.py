"""Positions, ranges and selections, shared by every feature: parsed, checked and widened in one place."""

from __future__ import annotations

import re

from lsprotocol import types

from .convert import to_codepoint
from .errors import BadRequest

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_range(value) -> types.Range:
    """A Range from a command's JSON argument; BadRequest when it is not ``{start: {line, character}, end: …}``."""
    try:
        start, end = value["start"], value["end"]
        numbers = [int(start["line"]), int(start["character"]), int(end["line"]), int(end["character"])]
    except (KeyError, TypeError, ValueError):
        raise BadRequest("'range' must be {start: {line, character}, end: {line, character}}") from None
    if min(numbers) < 0:
        raise BadRequest("'range' has a negative position")
    return types.Range(types.Position(numbers[0], numbers[1]), types.Position(numbers[2], numbers[3]))


def range_json(rng: types.Range) -> dict:
    return {"start": {"line": rng.start.line, "character": rng.start.character},
            "end": {"line": rng.end.line, "character": rng.end.character}}


def whole_lines(first: int, last: int) -> types.Range:
    """Lines first..last (0-based, inclusive), to the end of the last one."""
    return types.Range(types.Position(first, 0), types.Position(last, 10_000))


def check_position(doc, position: types.Position) -> None:
    if position.line > len(doc.lines):
        raise BadRequest(f"line {position.line} is past the end of the document ({len(doc.lines)} lines)")


def selection(doc, rng: types.Range) -> tuple[str, int, int]:
    """The selected text widened to whole lines, and its 0-based first and last lines. A range that ends at
    column 0 of a line does not include that line."""
    lines = doc.lines
    first = min(rng.start.line, max(0, len(lines) - 1))
    end = rng.end.line if (rng.end.character > 0 or rng.end.line == rng.start.line) else rng.end.line - 1
    last = max(first, min(end, len(lines) - 1))
    return "".join(lines[first:last + 1]), first, last


def enclosing(chunks, rng: types.Range) -> types.Range:
    """An empty selection means the smallest chunk (function, class, block) around the cursor, else its line."""
    if rng.start != rng.end:
        return rng
    line = rng.start.line + 1
    spans = [c for c in chunks if c.start_line <= line <= c.end_line]
    if spans:
        c = min(spans, key=lambda c: c.end_line - c.start_line)
        return whole_lines(c.start_line - 1, c.end_line - 1)
    return whole_lines(rng.start.line, rng.start.line)


def word_at(line: str, column: int) -> str:
    """The identifier that touches ``column`` (a code-point index), or ''."""
    for m in _WORD.finditer(line):
        if m.start() <= column <= m.end():
            return m.group(0)
    return ""


def symbol_at(doc, position: types.Position, encoding: str) -> tuple[str, str]:
    """(identifier under the cursor, its line without the line ending); ('', '') past the end."""
    check_position(doc, position)
    if position.line >= len(doc.lines):
        return "", ""
    line = doc.lines[position.line].rstrip("\r\n")
    return word_at(line, to_codepoint(line, position.character, encoding)), line
