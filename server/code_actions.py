"""Code actions, resolved lazily: the list appears at once, and a model runs only for the action the user picks."""

from __future__ import annotations

from lsprotocol import types

from .app import EngramServer
from .assist import DEFAULT_INSTRUCTION, add_docstring, generate_tests, rewrite_selection
from .context import is_private
from .errors import BadRequest
from .ranges import enclosing, parse_range, range_json

ACTIONS = {
    "explain": ("Engram: Explain selection", "quickfix.engram.explain"),
    "refactor": ("Engram: Refactor selection…", "refactor.rewrite.engram"),
    "docstring": ("Engram: Add docstring", "refactor.rewrite.engram.docstring"),
    "tests": ("Engram: Generate tests", "refactor.extract.engram.tests"),
    "similar": ("Engram: Find similar code", "source.engram.similar"),
}
COMMANDS = {"explain": "engram.explainSelection", "similar": "engram.similar"}  # run as commands, no edit
EDITS = {"refactor": lambda ls, uri, rng: rewrite_selection(ls, uri, rng, DEFAULT_INSTRUCTION),
         "docstring": add_docstring, "tests": generate_tests}


def wanted(kind: str, only: list[str] | None) -> bool:
    return not only or any(kind == o or kind.startswith(f"{o}.") for o in only)


def register(server: EngramServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[kind for _, kind in ACTIONS.values()], resolve_provider=True))
    async def code_action(ls: EngramServer, params: types.CodeActionParams):
        uri = params.text_document.uri
        if uri not in ls.workspace.text_documents or is_private(uri):
            return []
        await ls.roots.flush(uri)  # chunk ranges must describe the text the user sees, not the one before an edit
        engram, rel = ls.roots.locate(uri)
        rng = range_json(enclosing(engram.chunks(rel) if engram else [], params.range))
        return [types.CodeAction(title=title, kind=kind, data={"action": name, "uri": uri, "range": rng})
                for name, (title, kind) in ACTIONS.items() if wanted(kind, params.context.only)]

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: EngramServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        name, uri = data.get("action"), data.get("uri")
        if name not in ACTIONS or not isinstance(uri, str):
            raise BadRequest("this code action was not made by engram-ls")
        if name in COMMANDS:
            action.command = types.Command(title=ACTIONS[name][0], command=COMMANDS[name],
                                           arguments=[{"uri": uri, "range": data.get("range")}])
        else:
            action.edit = (await EDITS[name](ls, uri, parse_range(data.get("range")))).build()
        return action
