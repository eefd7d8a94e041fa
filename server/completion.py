"""Completions: ``textDocument/inlineCompletion`` (LSP 3.18) and ``textDocument/completion`` as the fallback for
clients without inline completion. Fill-in-the-middle with the coding model and retrieved cross-file context.

Per document, a newer request supersedes the older one: the older one's generation is cancelled in its worker,
and no result computed for an outdated document version is ever returned.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from typing import NamedTuple

from lsprotocol import types


from engram_ls.inference import Answer, Inference
from engram_ls.inference.prompts import suffix_head

from .app import EngramServer
from .completion_context import QUERY_LINES, completion_hits
from .context import clean, is_private, related, snippets
from .convert import link
from .ranges import check_position

log = logging.getLogger("engram_ls.server")
_ids = itertools.count(1)
STOPS = ["\n\n\n"]


def trim(text: str, suffix: str) -> str:
    """Cuts a completion at a blank line, at a Markdown fence line (the model closing a code block it imagined;
    seen in real VS Code: Tab put a stray "```" into a Python file) and where it starts repeating the code after
    the cursor."""
    text = text.rstrip()
    if "\n\n" in text:
        text = text[: text.index("\n\n")].rstrip()
    fence = re.search(r"(^|\n)[ \t]*```", text)
    if fence:
        text = text[: fence.start()].rstrip()
    head = suffix_head(suffix)
    if head:
        cut = text.find(head)
        if cut > 0:
            text = text[:cut].rstrip()
    return text


def drop_typed_indent(text: str, prefix: str) -> str:
    """On a line holding only indentation the model tends to write that indentation again (seen in real Neovim:
    "    def report(self):" offered at column 4, so accepting it indented the method twice); drop what the line
    already has."""
    indent = prefix[prefix.rfind("\n") + 1:]
    if not indent or indent.strip():
        return text
    n = 0
    while n < len(indent) and n < len(text) and text[n] == indent[n]:
        n += 1
    return text[n:]


def drop_leading_blank_lines(text: str, prefix: str) -> str:
    """On a line holding only indentation, blank lines the model starts with add nothing, and the cut at the first
    blank line (``trim``) would leave nothing at all (seen in real Neovim: every <C-x><C-o> on a fresh indented line
    came back empty)."""
    if prefix[prefix.rfind("\n") + 1:].strip():
        return text
    while True:
        nl = text.find("\n")
        if nl < 0 or text[:nl].strip():
            return text
        text = text[nl + 1:]


def suggestion(text: str, prefix: str, suffix: str) -> str:
    """The model's text as the editor should insert it."""
    return drop_typed_indent(trim(drop_leading_blank_lines(text, prefix), suffix), prefix)


def context_hits(engram, rel: str | None, prefix: str, suffix: str, similar: int) -> list:
    """(root, hit) pairs for a completion in ``rel`` of ``engram``: definitions and call sites of the names near
    the cursor, then similar code (``completion_context``). Blocking: run it off the event loop."""
    return [(engram.root, h) for h in completion_hits(engram, rel, prefix, suffix, similar=similar)]


async def fill(inference: Inference, prefix: str, suffix: str, hits, *, max_tokens: int, path: str, repo: str,
               request_id: str | None = None, stop=STOPS, budget: int | None = None,
               suffix_budget: int | None = None) -> Answer:
    """One fill-in-the-middle generation with the hits as repo-level context; secrets redacted. It ends where
    ``suggestion`` cuts it anyway (a blank line after its text, or the suffix's first line written again): the
    tokens after that cost the user time and never reach the editor."""
    return await inference.complete(clean(prefix), clean(suffix), snippets(hits), max_tokens=max_tokens,
                                    request_id=request_id, path=path, repo=repo, stop=list(stop), budget=budget,
                                    suffix_budget=suffix_budget, inline_stop=True)


class Shown(NamedTuple):
    """A suggestion returned to the editor: the prefix and suffix it was made for, its text and its context."""
    prefix: str
    suffix: str
    text: str
    hits: list | tuple = ()


def typed_ahead(last: Shown | None, prefix: str, suffix: str) -> str | None:
    """The rest of the last suggestion, when the keys typed since it came are its start: the user is accepting it
    by typing, so the model is not asked again — the answer it would recompute is this one, minus what was typed."""
    if last is None or suffix != last.suffix or len(prefix) <= len(last.prefix) or not prefix.startswith(last.prefix):
        return None
    typed = prefix[len(last.prefix):]
    rest = last.text[len(typed):] if last.text.startswith(typed) else ""
    return rest if rest.strip() else None


class Completer:
    """One in-flight generation per document; newer requests supersede older ones.

    While the cursor stays on one line and the text above it is unchanged, the snippets stay those of the line's
    first request: the prompt then differs from the last one only from the cursor's line on, so llama.cpp re-reads
    that line and what follows it rather than the whole prompt (a snippet set that changed with each typed letter
    would move the first changed token to the prompt's start). Keys that type the start of the last suggestion get
    its rest at once (``typed_ahead``)."""

    def __init__(self) -> None:
        self.tickets: dict[str, int] = {}
        self.line_context: dict[str, tuple[str, list]] = {}  # uri -> (the text above the cursor's line, hits)
        self.context_reused = 0  # requests that kept their line's snippets
        self.last: dict[str, Shown] = {}  # uri -> the suggestion it was last given
        self.typed_ahead = 0    # requests answered with the rest of the last suggestion
        self.running: dict[str, str] = {}
        self.started = 0        # generations handed to a worker
        self.superseded = 0     # requests a newer one replaced
        self.returned = 0       # generations whose text reached the editor
        self.discarded = 0      # generations finished or cancelled but not returned (superseded or outdated)
        self.wasted_tokens = 0  # tokens generated for discarded results

    async def generate(self, ls: EngramServer, uri: str, position: types.Position):
        settings = ls.config.completion
        if is_private(uri):
            return None
        doc = ls.document(uri)
        check_position(doc, position)
        ticket = self.tickets[uri] = self.tickets.get(uri, 0) + 1
        previous = self.running.pop(uri, None)
        if previous is not None:
            self.superseded += 1
            await ls.models.cancel(previous)
        offset = doc.offset_at_position(position)
        last = self.last.get(uri)
        rest = typed_ahead(last, doc.source[:offset], doc.source[offset:])
        if rest is not None:  # no debounce: the answer is at hand
            self.typed_ahead += 1
            return rest, last.hits
        if settings.debounce_ms:
            await asyncio.sleep(settings.debounce_ms / 1000)  # debounce: a keystroke soon after wins
        if self.tickets.get(uri) != ticket:
            return None
        version = doc.version
        source = doc.source
        offset = doc.offset_at_position(position)
        prefix, suffix = source[:offset], source[offset:]
        head = prefix[:prefix.rfind("\n") + 1]
        engram, rel = ls.roots.locate(uri)
        kept = self.line_context.get(uri)
        if kept is not None and kept[0] == head:
            hits = kept[1]
            self.context_reused += 1
        elif engram is not None:
            await ls.roots.flush(uri)
            hits = await asyncio.get_running_loop().run_in_executor(
                None, context_hits, engram, rel, prefix, suffix, settings.context_snippets)
        else:  # a document outside every root: similar code from all of them
            query = "\n".join(prefix.split("\n")[-QUERY_LINES:])
            line = position.line + 1
            hits = await related(ls, query, settings.context_snippets, uri, exclude_lines=(line, line))
        if self.tickets.get(uri) != ticket:
            return None
        self.line_context[uri] = (head, hits)
        inference = await ls.inference()
        # with snippets first; when that suggestion comes back empty (the 0.5B model, given snippets, sometimes
        # closes a code block and writes prose: seen in real Neovim on a fresh line after a method), once without
        for context in ((hits, []) if hits else (hits,)):
            rid = f"complete-{next(_ids)}"
            self.running[uri] = rid
            self.started += 1
            try:
                answer = await fill(inference, prefix, suffix, context, max_tokens=settings.max_tokens,
                                    request_id=rid, path=rel or uri.rsplit("/", 1)[-1],
                                    repo=engram.root.name if engram else "workspace", budget=settings.context_tokens,
                                    suffix_budget=settings.suffix_tokens)
            finally:
                if self.running.get(uri) == rid:
                    del self.running[uri]
            current = ls.workspace.text_documents.get(uri)
            text = suggestion(answer.text, prefix, suffix)
            if answer.cancelled or self.tickets.get(uri) != ticket or current is None or current.version != version \
                    or not text.strip():
                self.discarded += 1
                self.wasted_tokens += int(answer.usage.get("completion_tokens", 0))
                if text.strip() or answer.cancelled or self.tickets.get(uri) != ticket or current is None \
                        or current.version != version:
                    return None  # superseded, or the document moved on: never answer for an outdated version
                continue
            self.returned += 1
            self.last[uri] = Shown(prefix, suffix, text, context)
            return text, context
        return None

    def forget(self, uri: str) -> None:
        """A closed document keeps no snippets and no suggestion."""
        self.line_context.pop(uri, None)
        self.last.pop(uri, None)

    def stats(self) -> dict:
        return {"started": self.started, "superseded": self.superseded, "returned": self.returned,
                "discarded": self.discarded, "wasted_tokens": self.wasted_tokens,
                "context_reused": self.context_reused, "typed_ahead": self.typed_ahead}


def inline_supported(caps: types.ClientCapabilities) -> bool:
    td = caps.text_document
    return bool(td and getattr(td, "inline_completion", None))


def inline_item(text: str, pos: types.Position) -> types.InlineCompletionList:
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=text, range=types.Range(pos, pos))])


def completion_item(text: str, hits, pos: types.Position) -> types.CompletionList:
    """One item whose label is the suggestion's first line; the documentation shows all of it and its context."""
    first = next((line for line in text.split("\n") if line.strip()), text).strip()
    sources = ", ".join(link(root, h.path, h.start_line, h.end_line) for root, h in hits)
    doc = f"```\n{text}\n```" + (f"\n\nContext: {sources}" if sources else "")
    return types.CompletionList(is_incomplete=True, items=[types.CompletionItem(
        label=first[:80], kind=types.CompletionItemKind.Snippet, detail="engram-ls",
        documentation=types.MarkupContent(types.MarkupKind.Markdown, doc), sort_text="0000",
        filter_text=first, insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(types.Range(pos, pos), text))])


def enable(ls: EngramServer) -> None:
    """At initialize, from the configuration: inline completion for clients that have it, completion items for
    the others, neither when ``completion.enabled`` is false."""
    if not ls.config.completion.enabled:
        return
    completer = ls.completer
    if inline_supported(ls.client_capabilities):
        @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
        async def inline_completion(ls: EngramServer, params: types.InlineCompletionParams):
            result = await completer.generate(ls, params.text_document.uri, params.position)
            return inline_item(result[0], params.position) if result else None
    else:
        @ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["."]))
        async def completion(ls: EngramServer, params: types.CompletionParams):
            result = await completer.generate(ls, params.text_document.uri, params.position)
            if result is None:
                return types.CompletionList(is_incomplete=True, items=[])
            return completion_item(*result, params.position)


def register(server: EngramServer) -> None:
    server.completer = Completer()
    server.on_initialize.append(enable)
