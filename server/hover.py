"""Hover: what the symbol under the cursor is and where it comes from, with clickable citations.

The fast path — the most similar definitions and usages, no model — answers at once whenever the model cannot:
disabled, still loading, busy, or slower than ``hover.modelTimeoutMs``. The model's explanation then goes on in the
background and is cached per symbol and snippet content, so the next hover on that symbol shows it, until the code
it was made from changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
from collections import OrderedDict

from lsprotocol import types

from engram_ls.inference import InferenceError

from . import sentences
from .app import EngramServer
from .context import is_private, related, snippets
from .convert import fence, language_of, link
from .ranges import symbol_at

log = logging.getLogger("engram_ls.server")
_ids = itertools.count(1)
ON_ITS_WAY = "*An explanation from the model is on its way: hover again to see it.*"
_FENCE_SPLIT = re.compile(r"(```.*?(?:```|\Z))", re.DOTALL)
_SOFT_BREAK = re.compile(r"(?<=\S)[ \t]*\n(?![ \t]*(?:\n|[-*+>#|]|\d+[.)]\s))[ \t]*(?=\S)")


def prose(text: str) -> str:
    """Joins the model's hard-wrapped lines into paragraphs the editor wraps itself; code blocks, lists and blank
    lines stay as they are."""
    parts = _FENCE_SPLIT.split(text.strip())
    return "".join(p if p.startswith("```") else _SOFT_BREAK.sub(" ", p) for p in parts)


SHOWN_LINES = 8


def shown_lines(word: str, text: str, start_line: int) -> tuple[str, int, int]:
    """The ``SHOWN_LINES`` of a hit that a hover shows, and their line span: from just above the first line naming
    ``word`` (a hit's first lines named the hovered symbol in only 63% of citations, issue 12's bench)."""
    lines = text.split("\n")
    named = re.compile(rf"(?<![\w$]){re.escape(word)}(?![\w$])")
    first = next((i for i, line in enumerate(lines) if named.search(line)), 0)
    top = max(0, min(first - 1, len(lines) - SHOWN_LINES))
    shown = lines[top:top + SHOWN_LINES]
    return "\n".join(shown), start_line + top, start_line + top + len(shown) - 1


def fast_markdown(word: str, hits) -> str:
    parts = [f"**{word}** — related code in this workspace (engram-ls)"]
    for root, h in hits[:3]:
        text, start, end = shown_lines(word, h.text, h.start_line)
        parts.append(f"{link(root, h.path, start, end)}\n{fence(text, language_of(h.path), SHOWN_LINES)}")
    return "\n\n".join(parts)


class Explanations:
    """Model explanations keyed by symbol and the content of the snippets they were made from; at most one
    background explanation runs, the newest hover's."""

    def __init__(self, limit: int = 256):
        self.limit = limit
        self.done: OrderedDict[str, str] = OrderedDict()
        self.running: tuple[str, str, asyncio.Task] | None = None  # (key, request id, task)
        self.hits = self.misses = self.explained = 0

    @staticmethod
    def key(word: str, hits) -> str:
        digest = hashlib.sha1(word.encode())
        for root, h in hits:
            digest.update(f"\0{root}\0{h.path}\0{h.start_line}\0{h.text}".encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def get(self, key: str) -> str | None:
        text = self.done.get(key)
        if text is None:
            self.misses += 1
            return None
        self.hits += 1
        self.done.move_to_end(key)
        return text

    def start(self, ls: EngramServer, key: str, word: str, hits) -> asyncio.Task:
        """The explanation for ``key``: the one already running, or a new one that supersedes any other."""
        if self.running is not None:
            old_key, old_rid, old_task = self.running
            if old_key == key and not old_task.done():
                return old_task
            if not old_task.done():
                old_task.cancel()
                asyncio.ensure_future(ls.models.cancel(old_rid))
        rid = f"hover-{next(_ids)}"
        task = asyncio.ensure_future(self._explain(ls, key, word, hits, rid))
        task.add_done_callback(_log_failure)
        self.running = (key, rid, task)
        return task

    async def _explain(self, ls: EngramServer, key: str, word: str, hits, rid: str) -> str:
        settings = ls.config.hover
        answer = await (await ls.inference()).ask(
            f"Explain briefly what `{word}` is and does in this code base.", snippets(hits[:4]), role="research",
            max_tokens=settings.max_tokens, request_id=rid)
        roots = {h.path: r for r, h in hits}
        sources = " · ".join(link(roots[s.path], s.path, s.start_line, s.end_line) for s in answer.cited
                             if s.path in roots)
        body, cut = sentences.finish(answer.text, answer.finish, answer.usage.get("completion_tokens", 0))
        text = (f"**{word}** — {prose(body)}" + (f" *{cut}*" if cut else "")
                + (f"\n\n*Sources:* {sources}" if sources else ""))
        self.done[key] = text
        self.explained += 1
        while len(self.done) > self.limit:
            self.done.popitem(last=False)
        return text

    def stats(self) -> dict:
        return {"cached": len(self.done), "hits": self.hits, "misses": self.misses, "explained": self.explained,
                "running": bool(self.running and not self.running[2].done())}


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("hover explanation failed: %s", task.exception())


async def hover_markdown(ls: EngramServer, uri: str, word: str, hits) -> str:
    """The model's explanation above the retrieved code when it is cached or comes in time; otherwise the code
    at once, with a note that the explanation is on its way."""
    fast = fast_markdown(word, hits)
    if not ls.config.hover.use_model or is_private(uri) or ls.models.error:
        return fast
    cache: Explanations = ls.hover_cache
    key = cache.key(word, hits)
    cached = cache.get(key)
    if cached is not None:
        return f"{cached}\n\n---\n\n{fast}"
    task = cache.start(ls, key, word, hits)
    if ls.models.ready and not ls.models.busy("research"):
        try:
            text = await asyncio.wait_for(asyncio.shield(task), ls.config.hover.model_timeout_ms / 1000)
            return f"{text}\n\n---\n\n{fast}"
        except asyncio.TimeoutError:
            log.info("hover: the model is slower than hover.modelTimeoutMs; it goes on in the background")
        except (InferenceError, asyncio.CancelledError) as e:
            log.info("hover falls back to the fast path: %s", e)
            return fast
    return f"{ON_ITS_WAY}\n\n{fast}"


def register(server: EngramServer) -> None:
    server.hover_cache = Explanations()

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: EngramServer, params: types.HoverParams):
        uri = params.text_document.uri
        word, line = symbol_at(ls.document(uri), params.position, ls.position_encoding)
        if not word:
            return None
        hits = await related(ls, f"def {word}():\n{line.strip()}", 5)
        if not hits:
            return None
        return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, await hover_markdown(ls, uri, word, hits)))
