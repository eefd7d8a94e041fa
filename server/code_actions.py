"""Code actions, resolved lazily: the list appears at once, and a model runs only for the action the user picks."""

from __future__ import annotations

import logging
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from engram_ls.inference import InferenceError

from .app import EngramServer
from .commands import DEFAULT_INSTRUCTION, refactor_selection, rewrite, selection_text
from .context import clean, document, is_private, related, to_snippet
from .convert import language_of
from .edits import EditBuilder, extract_code
from .safety import UnsafeEdit

log = logging.getLogger("engram_ls.server")

ACTIONS = {
    "explain": ("Engram: Explain selection", "quickfix.engram.explain"),
    "refactor": ("Engram: Refactor selection…", "refactor.rewrite.engram"),
    "docstring": ("Engram: Add docstring", "refactor.rewrite.engram.docstring"),
    "tests": ("Engram: Generate tests", "refactor.extract.engram.tests"),
    "similar": ("Engram: Find similar code", "source.engram.similar"),
}


def _range_json(rng: types.Range) -> dict:
    return {"start": {"line": rng.start.line, "character": rng.start.character},
            "end": {"line": rng.end.line, "character": rng.end.character}}


def _enclosing(ls: EngramServer, uri: str, rng: types.Range) -> types.Range:
    """An empty selection means the chunk (function, class, block) around the cursor."""
    if rng.start != rng.end:
        return rng
    engram, rel = ls.roots.locate(uri)
    line = rng.start.line + 1
    if engram is not None:
        spans = [c for c in engram.chunks(rel) if c.start_line <= line <= c.end_line]
        if spans:
            c = min(spans, key=lambda c: c.end_line - c.start_line)
            return types.Range(types.Position(c.start_line - 1, 0), types.Position(c.end_line - 1, 10_000))
    return types.Range(types.Position(rng.start.line, 0), types.Position(rng.start.line, 10_000))


def test_path(root: Path, rel: str) -> Path:
    p = Path(rel)
    name = f"test_{p.stem}{p.suffix or '.py'}" if not p.stem.startswith("test_") else f"{p.stem}_more{p.suffix}"
    return root / "tests" / name


def register(server: EngramServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[kind for _, kind in ACTIONS.values()], resolve_provider=True))
    async def code_action(ls: EngramServer, params: types.CodeActionParams):
        uri = params.text_document.uri
        if uri not in ls.workspace.text_documents or is_private(uri):
            return []
        await ls.roots.flush(uri)  # chunk ranges must describe the text the user sees, not the one before an edit
        only = params.context.only
        rng = _enclosing(ls, uri, params.range)
        actions = []
        for name, (title, kind) in ACTIONS.items():
            if only and not any(kind == o or kind.startswith(f"{o}.") for o in only):
                continue
            actions.append(types.CodeAction(title=title, kind=kind,
                                            data={"action": name, "uri": uri, "range": _range_json(rng)}))
        return actions

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: EngramServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        name, uri = data.get("action"), data.get("uri")
        if name not in ACTIONS or not isinstance(uri, str):
            raise JsonRpcInvalidParams("this code action was not made by engram-ls")
        arg = {"uri": uri, "range": data.get("range")}
        if name == "explain":
            action.command = types.Command(title=ACTIONS[name][0], command="engram.explainSelection", arguments=[arg])
            return action
        if name == "similar":
            action.command = types.Command(title=ACTIONS[name][0], command="engram.similar", arguments=[arg])
            return action
        from .commands import _range

        rng = _range(arg)
        try:
            if name == "refactor":
                builder = await refactor_selection(ls, uri, rng, DEFAULT_INSTRUCTION)
            elif name == "docstring":
                builder = await add_docstring(ls, uri, rng)
            else:
                builder = await generate_tests(ls, uri, rng)
        except (UnsafeEdit, InferenceError) as e:
            raise JsonRpcInvalidParams(f"{ACTIONS[name][0]} failed: {e}") from None
        action.edit = builder.build()
        return action


async def add_docstring(ls: EngramServer, uri: str, rng: types.Range) -> EditBuilder:
    text, first, last = selection_text(ls, uri, rng)
    engram, rel = ls.roots.locate(uri)
    hits = await related(ls, text, 2, uri, exclude_lines=(first + 1, last + 1))
    code = await rewrite(ls, text, "add a concise docstring (or doc comment) that explains why the code exists and "
                                   "what it returns; change nothing else", hits, rel or uri)
    builder = EditBuilder(list(ls.roots.engrams), "engram-ls: add docstring")
    builder.replace_lines(uri, first, last, code, document(ls, uri).version)
    return builder


async def generate_tests(ls: EngramServer, uri: str, rng: types.Range) -> EditBuilder:
    text, first, last = selection_text(ls, uri, rng)
    engram, rel = ls.roots.locate(uri)
    if engram is None:
        raise UnsafeEdit("the document is outside the workspace roots; there is nowhere to put tests")
    hits = await related(ls, text, 3, uri, exclude_lines=(first + 1, last + 1))
    inference = await ls.inference()
    lang = language_of(rel)
    module = Path(rel).with_suffix("").as_posix().replace("/", ".")
    answer = await inference.ask(
        f"Write unit tests (pytest style for Python) for this code from {rel} (module {module}). "
        f"Return only the test file in one fenced block.\n```{lang}\n{clean(text)}\n```",
        [to_snippet(r, h) for r, h in hits], role="coding", max_tokens=512)
    builder = EditBuilder(list(ls.roots.engrams), "engram-ls: generate tests")
    builder.create(test_path(engram.root, rel), extract_code(answer.text) + "\n")
    return builder
