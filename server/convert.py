"""The one place where LSP types meet plain values: positions in the negotiated encoding, URIs, hits, edits."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from lsprotocol import types
from lsprotocol.converters import get_converter
from pygls.uris import from_fs_path, to_fs_path

from engram_ls.retrieval import Hit


class PositionError(ValueError):
    """A position that cannot exist (negative, or not a number)."""


def _units(ch: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(ch.encode("utf-8", "surrogatepass"))
    if encoding == types.PositionEncodingKind.Utf32:
        return 1
    return 2 if ord(ch) > 0xFFFF else 1


def to_codepoint(line: str, column: int, encoding: str) -> int:
    """A column in the client's units -> a Python string index. Past the end clamps to the end (as the spec
    says); a column inside a multi-unit character (half a surrogate pair) rounds down to that character."""
    if column < 0:
        raise PositionError(f"negative character offset {column}")
    if encoding == types.PositionEncodingKind.Utf32:
        return min(column, len(line))
    used = 0
    for i, ch in enumerate(line):
        width = _units(ch, encoding)
        if used + width > column:
            return i
        used += width
    return len(line)


def from_codepoint(line: str, index: int, encoding: str) -> int:
    """A Python string index -> a column in the client's units."""
    return sum(_units(ch, encoding) for ch in line[:index])


def split_lines(text: str) -> list[str]:
    """Lines as LSP counts them: split on \\n, \\r\\n and \\r; line endings removed."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def to_point(text_lines: list[str], position: types.Position, encoding: str) -> tuple[int, int]:
    """An LSP position -> (line, code-point column) in ``text_lines``, clamped to the document."""
    if position.line < 0:
        raise PositionError(f"negative line {position.line}")
    if position.line >= len(text_lines):
        last = len(text_lines) - 1
        return last, len(text_lines[last])
    line = text_lines[position.line]
    return position.line, to_codepoint(line, position.character, encoding)


def offset_of(text: str, line: int, column: int) -> int:
    """The string offset of (line, code-point column) in text with any line endings."""
    pos = 0
    for _ in range(line):
        nl = text.find("\n", pos)
        cr = text.find("\r", pos)
        if nl == -1 and cr == -1:
            return len(text)
        if cr != -1 and (nl == -1 or cr < nl):
            pos = cr + (2 if text.startswith("\r\n", cr) else 1)
        else:
            pos = nl + 1
    return pos + column


def uri_to_path(uri: str) -> Path | None:
    path = to_fs_path(uri)
    return Path(path) if path else None


def path_to_uri(path: Path) -> str:
    return from_fs_path(str(path)) or "file://" + quote(str(path))


def citation(root: Path, hit: Hit) -> dict:
    return {"path": hit.path, "uri": path_to_uri(root / hit.path), "start_line": hit.start_line,
            "end_line": hit.end_line}


def hit_json(root: Path, hit: Hit) -> dict:
    return {"path": hit.path, "uri": path_to_uri(root / hit.path), "start_line": hit.start_line,
            "end_line": hit.end_line, "score": hit.score, "text": hit.text}


def link(root: Path, path: str, start_line: int, end_line: int | None = None) -> str:
    """A clickable Markdown citation: ``[path:12-20](file:///abs/path#L12)``."""
    span = f"{start_line}-{end_line}" if end_line and end_line != start_line else f"{start_line}"
    return f"[{path}:{span}]({path_to_uri(root / path)}#L{start_line})"


_converter = get_converter()


def to_json(value) -> dict:
    """An lsprotocol value as the JSON-ready dict the client would receive."""
    return _converter.unstructure(value)


def lsp_range(start_line: int, start_char: int, end_line: int, end_char: int) -> types.Range:
    return types.Range(types.Position(start_line, start_char), types.Position(end_line, end_char))


def fence(text: str, language: str = "", max_lines: int = 12) -> str:
    lines = text.splitlines()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + ["…"]
    body = "\n".join(lines).replace("```", "`\u200b``")
    return f"```{language}\n{body}\n```"


LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".rs": "rust", ".go": "go", ".c": "c",
             ".h": "c", ".cpp": "cpp", ".java": "java", ".rb": "ruby", ".lua": "lua", ".sh": "bash",
             ".md": "markdown", ".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


def language_of(path: str) -> str:
    return LANGUAGES.get(Path(path).suffix, "")
