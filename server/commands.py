"""Workspace commands (``workspace/executeCommand``) and the custom ``engram/search`` request.

Every command takes zero or one argument: an object with camelCase keys (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInternalError

from engram_ls.inference import InferenceError
from engram_ls.retrieval.store import cache_root

from .app import EngramServer
from .context import clean, document, is_private, related, to_snippet
from .convert import citation, fence, hit_json, language_of, link, lsp_range, path_to_uri
from .edits import EditBuilder, extract_code
from .safety import UnsafeEdit

log = logging.getLogger("engram_ls.server")
_answers = itertools.count(1)
DEFAULT_INSTRUCTION = "Refactor for readability without changing behaviour."


def argument(args: tuple) -> dict:
    """The single object argument of a command (``{}`` when none)."""
    if not args or args[0] is None:
        return {}
    value = args[0]
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if not isinstance(value, dict):
        raise JsonRpcInvalidParams(f"expected one object argument, got {type(value).__name__}")
    return value


def _text(arg: dict, key: str, required: bool = True) -> str:
    value = arg.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise JsonRpcInvalidParams(f"'{key}' must be a non-empty string")
    return value


def _range(arg: dict) -> types.Range:
    rng = arg.get("range")
    try:
        start, end = rng["start"], rng["end"]
        values = [int(start["line"]), int(start["character"]), int(end["line"]), int(end["character"])]
    except (KeyError, TypeError, ValueError):
        raise JsonRpcInvalidParams("'range' must be {start: {line, character}, end: {line, character}}") from None
    if min(values) < 0:
        raise JsonRpcInvalidParams("'range' has a negative position")
    return lsp_range(*values)


def selection_text(ls: EngramServer, uri: str, rng: types.Range) -> tuple[str, int, int]:
    """The selected text, widened to whole lines, and its 0-based first and last lines."""
    doc = document(ls, uri)
    lines = doc.lines
    first = min(rng.start.line, max(0, len(lines) - 1))
    last = min(rng.end.line if (rng.end.character > 0 or rng.end.line == rng.start.line) else rng.end.line - 1,
               len(lines) - 1)
    last = max(first, last)
    return "".join(lines[first:last + 1]), first, last


async def search(ls: EngramServer, arg: dict) -> dict:
    query = _text(arg, "query")
    k = arg.get("k", 10)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 200:
        raise JsonRpcInvalidParams("'k' must be an integer in 1..200")
    scope = arg.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise JsonRpcInvalidParams("'scope' must be a string")
    hits = await ls.roots.search(query, k, scope)
    return {"results": [hit_json(root, h) for root, h in hits]}


async def show_answer(ls: EngramServer, title: str, markdown: str) -> str:
    """Writes an answer to a Markdown file under the cache dir and asks the client to show it; returns its URI."""
    folder = cache_root() / "answers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{next(_answers)}.md"
    path.write_text(f"# {title}\n\n{markdown}\n", encoding="utf-8")
    uri = path_to_uri(path)
    window = ls.client_capabilities.window
    if window and window.show_document and window.show_document.support:
        try:
            await asyncio.wait_for(ls.window_show_document_async(
                types.ShowDocumentParams(uri=uri, take_focus=True)), 10)
        except Exception as e:
            log.info("showDocument failed: %s", e)
    return uri


async def explain(ls: EngramServer, question: str, hits, title: str) -> dict:
    try:
        inference = await ls.inference()
        answer = await inference.ask(question, [to_snippet(r, h) for r, h in hits], role="research",
                                     max_tokens=384)
        body = answer.text.strip()
    except InferenceError as e:
        body = f"*The model is unavailable ({e}); here is the most relevant code instead.*"
        answer = None
    cited_keys = {(s.path, s.start_line) for s in answer.cited} if answer else set()
    cited_hits = [(r, h) for r, h in hits if (h.path, h.start_line) in cited_keys] or list(hits)
    citations = [citation(r, h) for r, h in cited_hits]
    sources = "\n".join(f"- {link(r, h.path, h.start_line, h.end_line)}" for r, h in cited_hits)
    snippets = "\n\n".join(f"{link(r, h.path, h.start_line, h.end_line)}\n{fence(h.text, language_of(h.path), 20)}"
                           for r, h in hits)
    markdown = f"{body}\n\n## Sources\n{sources}\n\n## Retrieved code\n{snippets}"
    uri = await show_answer(ls, title, markdown)
    return {"markdown": markdown, "uri": uri, "citations": citations}


async def rewrite(ls: EngramServer, code: str, instruction: str, hits, path: str) -> str:
    inference = await ls.inference()
    lang = language_of(path)
    answer = await inference.ask(
        f"Rewrite the following code from {path} so that: {instruction}\n"
        f"Return only the complete rewritten code in one fenced block.\n```{lang}\n{clean(code)}\n```",
        [to_snippet(r, h) for r, h in hits], role="coding", max_tokens=512)
    return extract_code(answer.text)


async def propose(ls: EngramServer, builder: EditBuilder, apply: bool, plan: str = "") -> dict:
    edit = builder.build()
    applied = False
    if apply and builder.changes:
        try:
            result = await asyncio.wait_for(ls.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(edit=edit, label=builder.label)), 600)
            applied = bool(result and result.applied)
        except Exception as e:
            log.info("workspace/applyEdit failed: %s", e)
    return {"edit": ls.protocol._converter.unstructure(edit), "applied": applied, "files": builder.files,
            "plan": plan}


async def refactor_selection(ls: EngramServer, uri: str, rng: types.Range, instruction: str) -> EditBuilder:
    if is_private(uri):
        raise JsonRpcInvalidParams("refusing to send a secret-bearing file to a model")
    text, first, last = selection_text(ls, uri, rng)
    hits = await related(ls, text, 3, uri, exclude_lines=(first + 1, last + 1))
    engram, rel = ls.roots.locate(uri)
    code = await rewrite(ls, text, instruction, hits, rel or uri)
    builder = EditBuilder(list(ls.roots.engrams), f"engram-ls: {instruction}")
    builder.replace_lines(uri, first, last, code, document(ls, uri).version)
    return builder


def register(server: EngramServer) -> None:
    @server.command("engram.search")
    async def search_command(ls: EngramServer, *args):
        return await search(ls, argument(args))

    @server.feature("engram/search")
    async def search_request(ls: EngramServer, params):
        if hasattr(params, "_asdict"):
            params = params._asdict()
        if not isinstance(params, dict):
            raise JsonRpcInvalidParams("engram/search takes {query, k?, scope?}")
        return await search(ls, params)

    @server.command("engram.reindex")
    async def reindex(ls: EngramServer, *args):
        results = await asyncio.gather(*ls.roots.index_all(), return_exceptions=True)
        ok = [r for r in results if isinstance(r, dict)]
        if not ok and results:
            raise JsonRpcInternalError(f"reindexing failed: {results[0]}")
        return {"files": sum(r["files"] for r in ok), "chunks": sum(r["chunks"] for r in ok),
                "seconds": round(sum(r["seconds"] for r in ok), 3), "roots": ok}

    @server.command("engram.status")
    async def status(ls: EngramServer, *args):
        return {"version": ls.version, "roots": [str(r) for r in ls.roots.engrams], "index": ls.roots.status(),
                "models": ls.inference_status(), "position_encoding": ls.workspace.position_encoding,
                "completion": ls.completer.stats()}

    @server.command("engram.documentState")
    async def document_state(ls: EngramServer, *args):
        """Diagnostics: the engram's view of one document (its chunks and a digest of its aggregate vector)."""
        uri = _text(argument(args), "uri")
        await ls.roots.flush()
        engram, rel = ls.roots.locate(uri)
        if engram is None or rel not in engram.docs:
            raise JsonRpcInvalidParams(f"not indexed: {uri}")
        import hashlib

        dims, vals = engram.file_vector(rel)
        return {"path": rel, "chunks": [[c.start_line, c.end_line, c.digest, c.kind, c.symbol]
                                        for c in engram.chunks(rel)],
                "vector_sha": hashlib.sha256(dims.tobytes() + vals.astype("int64").tobytes()).hexdigest(),
                "text_sha": hashlib.sha256((engram.document_text(rel) or "").encode("utf-8", "surrogatepass")).hexdigest()}

    @server.command("engram.explainWorkspace")
    async def explain_workspace(ls: EngramServer, *args):
        question = _text(argument(args), "question")
        hits = await related(ls, question, 6)
        return await explain(ls, question, hits, question)

    @server.command("engram.explainSelection")
    async def explain_selection(ls: EngramServer, *args):
        arg = argument(args)
        uri = _text(arg, "uri")
        if is_private(uri):
            raise JsonRpcInvalidParams("refusing to send a secret-bearing file to a model")
        text, first, last = selection_text(ls, uri, _range(arg))
        engram, rel = ls.roots.locate(uri)
        hits = await related(ls, text, 4, uri, exclude_lines=(first + 1, last + 1))
        name = rel or uri
        question = f"Explain what this code from {name} (lines {first + 1}-{last + 1}) does:\n```\n{clean(text)}\n```"
        return await explain(ls, question, hits, f"{name}:{first + 1}-{last + 1}")

    @server.command("engram.similar")
    async def similar(ls: EngramServer, *args):
        arg = argument(args)
        uri = _text(arg, "uri")
        text, first, last = selection_text(ls, uri, _range(arg))
        hits = await related(ls, text, 8, uri, exclude_lines=(first + 1, last + 1))
        markdown = "\n\n".join(f"{link(r, h.path, h.start_line, h.end_line)} (score {h.score:.3f})\n"
                               f"{fence(h.text, language_of(h.path), 12)}" for r, h in hits) or "No similar code."
        uri_md = await show_answer(ls, "Similar code", markdown)
        return {"results": [hit_json(r, h) for r, h in hits], "uri": uri_md}

    @server.command("engram.refactorSelection")
    async def refactor_selection_command(ls: EngramServer, *args):
        arg = argument(args)
        uri = _text(arg, "uri")
        instruction = _text(arg, "instruction", required=False) or DEFAULT_INSTRUCTION
        try:
            builder = await refactor_selection(ls, uri, _range(arg), instruction)
        except (UnsafeEdit, InferenceError) as e:
            raise JsonRpcInvalidParams(str(e)) from None
        return await propose(ls, builder, arg.get("apply", True) is not False)

    @server.command("engram.refactorWorkspace")
    async def refactor_workspace(ls: EngramServer, *args):
        arg = argument(args)
        instruction = _text(arg, "instruction")
        hits = await related(ls, instruction, 4)
        try:
            inference = await ls.inference()
            plan = await inference.ask(f"Plan this change to the code base: {instruction}\nSay briefly which of "
                                       f"the shown code must change and how.", [to_snippet(r, h) for r, h in hits],
                                       role="research", max_tokens=160)
        except InferenceError as e:
            raise JsonRpcInternalError(f"model unavailable: {e}") from None
        builder = EditBuilder(list(ls.roots.engrams), f"engram-ls: {instruction}")
        targets = []
        for root, hit in hits:
            if len(targets) >= 3 or any(t[1].path == hit.path for t in targets):
                continue
            targets.append((root, hit))
        for root, hit in targets:
            path = root / hit.path
            uri = path_to_uri(path)
            open_doc = ls.workspace.text_documents.get(uri)
            current = open_doc.source if open_doc else path.read_text(encoding="utf-8", errors="replace")
            lines = current.splitlines()
            original = "\n".join(lines[hit.start_line - 1:hit.end_line])
            if original != hit.text:
                log.info("skipping %s:%s: it holds redacted secrets or changed", hit.path, hit.start_line)
                continue
            try:
                code = await rewrite(ls, original, f"{instruction}\nPlan: {plan.text.strip()}",
                                     [t for t in hits if t[1] is not hit], hit.path)
                builder.replace_lines(uri, hit.start_line - 1, hit.end_line - 1, code,
                                      open_doc.version if open_doc else None)
            except UnsafeEdit as e:
                log.warning("refused edit: %s", e)
            except InferenceError as e:
                raise JsonRpcInternalError(f"model failed: {e}") from None
        return await propose(ls, builder, arg.get("apply", True) is not False, plan.text.strip())
