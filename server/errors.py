"""The one table from internal errors to JSON-RPC error codes.

Handlers and helpers raise plain exceptions; ``EngramProtocol`` answers every failed request through
``response_error``, so the same failure gets the same code whichever feature it came from. Anything not in the
table is logged with its traceback and answered as an internal error.
"""

from __future__ import annotations

from lsprotocol import types

from engram_ls.inference import InferenceError

from .convert import PositionError
from .safety import UnsafeEdit

INVALID_PARAMS = types.ErrorCodes.InvalidParams          # -32602: the request itself is wrong
REQUEST_FAILED = types.LSPErrorCodes.RequestFailed       # -32803: a valid request the server could not carry out


class BadRequest(ValueError):
    """A request whose arguments are missing or malformed, or that names a document that is not open."""


ERROR_CODES: dict[type[Exception], int] = {
    BadRequest: INVALID_PARAMS,
    PositionError: INVALID_PARAMS,
    UnsafeEdit: REQUEST_FAILED,
    InferenceError: REQUEST_FAILED,
}


def response_error(exc: BaseException) -> types.ResponseError | None:
    """The JSON-RPC error for a known internal error, or None for anything else."""
    for kind, code in ERROR_CODES.items():
        if isinstance(exc, kind):
            return types.ResponseError(code=int(code), message=str(exc) or kind.__name__)
    return None
