"""Workspace commands (``workspace/executeCommand``) and the custom ``engram/search`` request.

Every command takes zero or one argument: an object with camelCase keys (see docs/architecture.md). Handlers
parse that argument, call a helper (assist.py for the model's work) and return its JSON.
"""

from __future__ import annotations

import hashlib

from .app import EngramServer
from .assist import (DEFAULT_INSTRUCTION, explain_selection, propose, refactor_workspace, rewrite_selection,
                     similar)
from .assist import explain_workspace as explain_from_workspace
from .convert import hit_json
from .errors import BadRequest
from .ranges import parse_range


def argument(args: tuple) -> dict:
    """The single object argument of a command (``{}`` when none)."""
    if not args or args[0] is None:
        return {}
    value = args[0]
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if not isinstance(value, dict):
        raise BadRequest(f"expected one object argument, got {type(value).__name__}")
    return value


def text_arg(arg: dict, key: str, required: bool = True) -> str:
    value = arg.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"'{key}' must be a non-empty string")
    return value


def search_args(arg: dict) -> tuple[str, int, str | None]:
    query = text_arg(arg, "query")
    k = arg.get("k", 10)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 200:
        raise BadRequest("'k' must be an integer in 1..200")
    scope = arg.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise BadRequest("'scope' must be a string")
    return query, k, scope


async def search(ls: EngramServer, arg: dict) -> dict:
    hits = await ls.roots.search(*search_args(arg))
    return {"results": [hit_json(root, h) for root, h in hits]}


def register(server: EngramServer) -> None:
    @server.command("engram.search")
    async def search_command(ls: EngramServer, *args):
        return await search(ls, argument(args))

    @server.feature("engram/search")
    async def search_request(ls: EngramServer, params):
        if hasattr(params, "_asdict"):
            params = params._asdict()
        if not isinstance(params, dict):
            raise BadRequest("engram/search takes {query, k?, scope?}")
        return await search(ls, params)

    @server.command("engram.reindex")
    async def reindex(ls: EngramServer, *args):
        return await ls.roots.reindex()

    @server.command("engram.status")
    async def status(ls: EngramServer, *args):
        return {"version": ls.version, "roots": [str(r) for r in ls.roots.engrams], "index": ls.roots.status(),
                "models": ls.models.status(), "position_encoding": ls.position_encoding,
                "completion": ls.completer.stats(), "hover": ls.hover_cache.stats()}

    @server.command("engram.documentState")
    async def document_state(ls: EngramServer, *args):
        """Diagnostics: the engram's view of one document (its chunks and a digest of its aggregate vector), with
        the syntax structure settled as a typing pause would."""
        uri = text_arg(argument(args), "uri")
        await ls.roots.flush()
        engram, rel = ls.roots.locate(uri)
        if engram is None or rel not in engram.docs:
            raise BadRequest(f"not indexed: {uri}")
        await ls.roots.settle_now(engram)
        dims, vals = engram.file_vector(rel)
        text = (engram.document_text(rel) or "").encode("utf-8", "surrogatepass")
        return {"path": rel, "chunks": [[c.start_line, c.end_line, c.digest, c.kind, c.symbol]
                                        for c in engram.chunks(rel)],
                "vector_sha": hashlib.sha256(dims.tobytes() + vals.astype("int64").tobytes()).hexdigest(),
                "text_sha": hashlib.sha256(text).hexdigest()}

    @server.command("engram.explainWorkspace")
    async def explain_workspace(ls: EngramServer, *args):
        return await explain_from_workspace(ls, text_arg(argument(args), "question"))

    @server.command("engram.explainSelection")
    async def explain_selection_command(ls: EngramServer, *args):
        arg = argument(args)
        return await explain_selection(ls, text_arg(arg, "uri"), parse_range(arg.get("range")))

    @server.command("engram.similar")
    async def similar_command(ls: EngramServer, *args):
        arg = argument(args)
        return await similar(ls, text_arg(arg, "uri"), parse_range(arg.get("range")))

    @server.command("engram.refactorSelection")
    async def refactor_selection_command(ls: EngramServer, *args):
        arg = argument(args)
        instruction = text_arg(arg, "instruction", required=False) or DEFAULT_INSTRUCTION
        builder = await rewrite_selection(ls, text_arg(arg, "uri"), parse_range(arg.get("range")), instruction)
        return await propose(ls, builder, arg.get("apply", True) is not False)

    @server.command("engram.refactorWorkspace")
    async def refactor_workspace_command(ls: EngramServer, *args):
        arg = argument(args)
        builder, plan = await refactor_workspace(ls, text_arg(arg, "instruction"))
        return await propose(ls, builder, arg.get("apply", True) is not False, plan)
