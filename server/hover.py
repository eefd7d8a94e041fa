"""Hover: what the symbol under the cursor is and where it comes from, with clickable citations.

The fast path — the most similar definitions and usages, no model — answers at once when the model is disabled,
busy or slower than ``hover.modelTimeoutMs``; otherwise the research model explains from the same snippets.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from lsprotocol import types

from engram_ls.inference import InferenceError

from .app import EngramServer
from .context import check_position, document, is_private, related, to_snippet, word_at
from .convert import fence, language_of, link, to_codepoint

log = logging.getLogger("engram_ls.server")
_ids = itertools.count(1)


def fast_markdown(word: str, hits) -> str:
    parts = [f"**{word}** — related code in this workspace (engram-ls)"]
    for root, h in hits[:3]:
        parts.append(f"{link(root, h.path, h.start_line, h.end_line)}\n{fence(h.text, language_of(h.path), 8)}")
    return "\n\n".join(parts)


def model_busy(ls: EngramServer) -> bool:
    status = ls.inference_status().get("research")
    return bool(status) and status.get("alive", 0) > 0 and status.get("busy", 0) >= status.get("alive", 0)


def register(server: EngramServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: EngramServer, params: types.HoverParams):
        uri = params.text_document.uri
        doc = document(ls, uri)
        check_position(doc, params.position)
        if params.position.line >= len(doc.lines):
            return None
        line = doc.lines[params.position.line].rstrip("\r\n")
        column = to_codepoint(line, params.position.character, ls.workspace.position_encoding or "utf-16")
        word = word_at(line, column)
        if not word:
            return None
        hits = await related(ls, f"def {word}():\n{line.strip()}", 5)
        if not hits:
            return None
        fast = fast_markdown(word, hits)
        settings = ls.config.hover
        if not settings.use_model or is_private(uri) or model_busy(ls):
            return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, fast))
        rid = f"hover-{next(_ids)}"
        try:
            inference = await asyncio.wait_for(ls.inference(), settings.model_timeout_ms / 1000)
            answer = await asyncio.wait_for(
                inference.ask(f"Explain briefly what `{word}` is and does in this code base.",
                              [to_snippet(r, h) for r, h in hits[:4]], role="research",
                              max_tokens=settings.max_tokens, request_id=rid),
                settings.model_timeout_ms / 1000)
        except (asyncio.TimeoutError, InferenceError) as e:
            log.info("hover falls back to the fast path: %s", e or "model too slow")
            if ls._inference is not None:
                await ls._inference.cancel(rid)
            return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, fast))
        roots = {h.path: r for r, h in hits}
        sources = " · ".join(link(roots[s.path], s.path, s.start_line, s.end_line) for s in answer.cited
                             if s.path in roots)
        text = f"**{word}** — {answer.text.strip()}\n\n*Sources:* {sources}\n\n---\n\n{fast}"
        return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text))
