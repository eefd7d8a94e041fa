"""Per-document state and the text diff that turns a whole-document update into the lines it touched.

Editors send whole texts or ranges; either way the engine only needs the changed line range, which a common
prefix/suffix comparison over the UTF-8 bytes finds with a binary search of slice comparisons (no per-line Python
loop, no per-byte array).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


def normalise(text: str) -> str:
    """The indexed view of a text: \\r\\n and \\r become \\n, so line numbers match the editor's."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def sha_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Change:
    """A changed line range: old lines ``start..old_end`` (0-based, inclusive) became new lines ``start..new_end``."""

    start: int
    old_end: int
    new_end: int
    prefix: int = 0       # bytes equal at the front of both texts
    suffix: int = 0       # bytes equal at the back (never overlapping the prefix)

    @property
    def delta(self) -> int:
        return self.new_end - self.old_end


def _common_prefix(old: bytes, new: bytes, limit: int) -> int:
    """Length of the common prefix (at most ``limit``): a binary search of slice comparisons (memcmp), about
    2 x limit bytes compared in all, with no per-byte array."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if old[lo:mid] == new[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(old: bytes, new: bytes, limit: int) -> int:
    """Length of the common suffix (at most ``limit``), as ``_common_prefix`` from the back."""
    lo, hi, a, b = 0, limit, len(old), len(new)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if old[a - mid:a - lo] == new[b - mid:b - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def diff(old: bytes, new: bytes) -> Change | None:
    """The line range that differs between two texts, or None when they are equal."""
    if old == new:
        return None
    n = min(len(old), len(new))
    p = _common_prefix(old, new, n)
    s = _common_suffix(old, new, n - p)                # the suffix may not overlap the prefix
    start = old.count(b"\n", 0, p)
    return Change(start, start + old.count(b"\n", p, len(old) - s), start + new.count(b"\n", p, len(new) - s), p, s)


def map_lines(lines: np.ndarray, change: Change, is_end: bool) -> np.ndarray:
    """``map_line`` over an array of 1-based lines (the spans of every chunk of a document at once)."""
    first, old_last, new_last = change.start + 1, change.old_end + 1, change.new_end + 1
    inside = new_last if is_end else np.where(lines == first, lines, np.minimum(lines, new_last))
    return np.where(lines < first, lines, np.where(lines > old_last, lines + change.delta, inside))


def map_line(line: int, change: Change, is_end: bool) -> int:
    """Where an old 1-based line lands after ``change`` (lines inside the changed range clamp to its new extent)."""
    first, old_last, new_last = change.start + 1, change.old_end + 1, change.new_end + 1
    if line < first:
        return line
    if line > old_last:
        return line + change.delta
    if is_end:
        return new_last
    return line if line == first else min(line, new_last)


@dataclass
class Document:
    """One indexed file. ``slots`` are its chunks in line order. Open (editor) documents keep their text, its
    indexed lines and bytes, and a syntax tree for incremental re-parsing."""

    doc_id: int
    sha: str
    size: int
    mtime_ns: int
    slots: list[int] = field(default_factory=list)
    text: str | None = None
    lines: list[str] | None = None
    data: bytes | None = None
    tree: object = None
    settled: bool = True
    vector: tuple[np.ndarray, np.ndarray] | None = None   # file aggregate, materialised on first use
