"""Answers end at a sentence or code-block boundary, never mid-word: when the token limit cuts an answer, it is
trimmed back to its last complete sentence (or closed code block, list item, paragraph) and says where it was cut.

Pure text functions; ``SentenceGate`` applies the same rule to a stream, so a terminal never shows the half
sentence that a cut would take back.
"""

from __future__ import annotations

import re
from typing import Callable

# A sentence ends at . ! or ? (and any closing brackets, quotes or Markdown emphasis), followed by white space —
# or by the end of the text, when the text is whole. "e.g." and "i.e." do not end one.
_END = re.compile(r"(?<![Ee]\.g)(?<![Ii]\.e)(?<!\bvs)[.!?][)\]\"'*_`]*(?=\s)")
_END_OF_TEXT = re.compile(r"(?<![Ee]\.g)(?<![Ii]\.e)(?<!\bvs)[.!?][)\]\"'*_`]*\s*\Z")
_ITEM = re.compile(r"[ \t]*(?:[-*+]\s|\d+[.)]\s|#{1,6}\s|\|)")   # a list item, heading or table row starts


def last_boundary(text: str, whole: bool = True) -> int:
    """The length of ``text`` up to its last complete sentence, closed code block, finished list item or
    paragraph (0 when there is none). ``whole=False`` for a stream still arriving: a full stop at the very end may
    yet become ``file.py``, so it does not count."""
    best, pos, fenced = 0, 0, False
    for line in text.splitlines(keepends=True):
        start, pos = pos, pos + len(line)
        stripped = line.strip()
        if stripped.startswith("```"):
            if fenced and (line.endswith("\n") or whole):
                best = start + len(line.rstrip("\n"))
            fenced = not fenced
            continue
        if fenced:
            continue
        if start > 0 and (not stripped and line.endswith("\n") or _ITEM.match(line)):
            best = max(best, len(text[:start].rstrip()))  # the previous paragraph or item is complete
        for m in _END.finditer(line):
            best = max(best, start + m.end())
        if whole and pos == len(text):
            m = _END_OF_TEXT.search(line)
            if m:
                best = max(best, start + len(line.rstrip()))
    return best


def notice(tokens: int) -> str:
    return f"(cut at {tokens} tokens)"


def trim_cut(text: str) -> str:
    """``text`` back to its last boundary; with none, back to its last whole word and an ellipsis."""
    end = last_boundary(text)
    if end:
        return text[:end].rstrip()
    words = text.rstrip()
    space = max(words.rfind(" "), words.rfind("\n"))
    return (words[:space].rstrip() + " …") if space > 0 else ""


def finish(text: str, finish_reason: str, tokens: int) -> tuple[str, str | None]:
    """``(text, notice)`` for an answer: unchanged when the model stopped by itself, trimmed with a notice when
    the token limit (``finish_reason`` "length") cut it."""
    if finish_reason != "length":
        return text.strip(), None
    return trim_cut(text.strip()), notice(tokens)


class SentenceGate:
    """Streams text on only up to its last boundary, holding the sentence still being written; ``close(cut)``
    lets the rest through when the answer ended by itself and drops it when the token limit cut it. Held text
    longer than ``hold`` characters goes out up to its last space or newline, so an answer without sentences
    still streams."""

    def __init__(self, emit: Callable[[str], None], hold: int = 240):
        self.emit, self.hold = emit, hold
        self.text, self.sent = "", 0

    def _send(self, end: int) -> None:
        if end > self.sent:
            self.emit(self.text[self.sent:end])
            self.sent = end

    def feed(self, piece: str) -> None:
        self.text += piece
        end = last_boundary(self.text, whole=False)
        if end <= self.sent and len(self.text) - self.sent > self.hold:
            end = max(self.text.rfind(" ", self.sent), self.text.rfind("\n", self.sent))
        self._send(end)

    def close(self, cut: bool) -> str:
        """Emits what is left to show; returns the text shown in all."""
        if not cut:
            self._send(len(self.text))
        else:
            end = last_boundary(self.text)
            self._send(end)
            if self.sent == 0 and self.text.strip():  # no boundary at all: the last whole word
                shown = trim_cut(self.text)
                self.emit(shown)
                return shown
        return self.text[:self.sent]
