"""The engram-ls language server: ``EngramServer`` owns the state; feature modules register thin handlers on it."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest, JsonRpcParseError
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import JsonRPCRequestMessage, RPCRequest

from .config import ServerConfig, parse
from .errors import BadRequest, response_error
from .state import Roots
from .workers import Models

log = logging.getLogger("engram_ls.server")
SERVER_NOT_INITIALIZED = -32002


def _version() -> str:
    try:
        return metadata.version("engram-ls")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class _Answered:
    """Marks a message already answered with an error while it was being decoded."""

    jsonrpc = "2.0"


class EngramProtocol(LanguageServerProtocol):
    """pygls's protocol, plus a JSON-RPC error for every request it would otherwise drop: params that fail to
    decode, requests before ``initialize`` and after ``shutdown``."""

    def structure_message(self, data):
        if isinstance(data, dict) and "jsonrpc" in data and (
                data.get("jsonrpc") != "2.0" or not ("method" in data or "id" in data)):
            return data  # a nested value that merely has a "jsonrpc" key (json.loads calls this hook on every dict)
        if isinstance(data, dict) and "id" in data and "method" in data and "jsonrpc" in data:
            kind = self.get_message_type(data["method"])
            if kind is not None and kind.__name__.endswith("Notification"):
                # A notification method sent as a request: decoding would drop its id and leave it unanswered.
                self._send_response(data["id"], None, JsonRpcInvalidRequest(
                    f"{data['method']} is a notification; it takes no id").to_response_error())
                return _Answered()
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                self._send_response(data["id"], None, types.ResponseError(
                    code=-32602, message=f"invalid params for {data['method']}: {_cause(exc)}"))
                return _Answered()
            raise

    def _send_handler_result(self, future, *, msg_id):
        """Known internal errors become JSON-RPC errors through the one table in errors.py."""
        error = None if future.cancelled() or future.exception() is None else response_error(future.exception())
        if error is None:
            super()._send_handler_result(future, msg_id=msg_id)
            return
        self._request_futures.pop(msg_id, None)
        log.info("request %s failed: %s", msg_id, error.message)
        self._send_response(msg_id, error=error)

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):
        """pygls 2.1.1 runs the handler behind a generator feature (``workspace/executeCommand``, every engram.*
        command) under a fresh uuid in ``_request_futures`` and never removes it: each command kept its finished
        task and its result alive. Forget a future once it is done — on the event loop, later: a thread's future
        completes on that thread, and a cancelled one calls back at once, in the middle of pygls's shutdown loop over
        this dict (which then raised "dictionary changed size during iteration" and never answered shutdown)."""
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # not on the loop (never the case for messages read from stdio): keep pygls's behaviour

            def drop(done, msg_id=msg_id):
                if self._request_futures.get(msg_id) is done:
                    del self._request_futures[msg_id]

            def forget(done):
                try:
                    loop.call_soon_threadsafe(drop, done)
                except RuntimeError:  # the loop is closed: nothing is kept alive any more
                    pass
            future.add_done_callback(forget)

    def answer_parse_error(self, error: json.JSONDecodeError) -> None:
        """Invalid JSON has no id to answer; JSON-RPC says to reply with a null id."""
        self._send_response(None, None, JsonRpcParseError(f"invalid JSON: {error}").to_response_error())

    def handle_message(self, message):
        if isinstance(message, _Answered):
            return
        method = getattr(message, "method", None)
        if isinstance(message, RPCRequest) or isinstance(message, JsonRPCRequestMessage):
            if self._shutdown and method != types.EXIT:
                self._send_response(message.id, None, JsonRpcInvalidRequest(
                    "the server is shutting down").to_response_error())
                return
            if getattr(self, "_workspace", None) is None and method != types.INITIALIZE:
                self._send_response(message.id, None, types.ResponseError(
                    code=SERVER_NOT_INITIALIZED, message=f"{method}: the server is not initialized yet"))
                return
        super().handle_message(message)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return text[:300]


class EngramServer(LanguageServer):
    """Owns the configuration, one engram per workspace root, and the model workers."""

    def __init__(self) -> None:
        super().__init__("engram-ls", _version(), protocol_cls=EngramProtocol, max_workers=4)
        self.config = ServerConfig()
        self.roots = Roots(self)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-encode")
        self.models = Models(lambda text: self.tell(types.MessageType.Error, text))
        self.on_initialize: list = []  # feature modules register their optional features here, from the config

    def tell(self, level: types.MessageType, text: str) -> None:
        """One line for the user (window/showMessage), and the log."""
        log.log(logging.WARNING if level <= types.MessageType.Warning else logging.INFO, "%s", text)
        self.window_show_message(types.ShowMessageParams(level, f"engram-ls: {text}"))

    def document(self, uri: str):
        """The open text document for ``uri``; BadRequest when the client never opened it."""
        if uri not in self.workspace.text_documents:
            raise BadRequest(f"document not open: {uri}")
        return self.workspace.get_text_document(uri)

    @property
    def position_encoding(self) -> str:
        return self.workspace.position_encoding or types.PositionEncodingKind.Utf16

    # -- configuration --------------------------------------------------------------------------------------------
    def apply_settings(self, settings) -> list[str]:
        """Parses settings into ``self.config``; reports each warning once with window/showMessage."""
        config, warnings = parse(settings)
        self.config = config
        logging.getLogger("engram_ls").setLevel(config.log_level.upper())
        for warning in warnings:
            self.tell(types.MessageType.Warning, warning)
        asyncio.ensure_future(self.models.restart(config.inference))
        return warnings

    async def inference(self):
        """The started model workers; InferenceError when they cannot run."""
        return await self.models.get(self.config.inference)

    async def close(self) -> None:
        await self.models.close()
        await self.roots.save_all()

    # -- errors outside requests ----------------------------------------------------------------------------------
    def report_server_error(self, error: Exception, source) -> None:
        if isinstance(error, json.JSONDecodeError):
            self.protocol.answer_parse_error(error)
            return
        log.error("engram-ls error (%s): %s", getattr(source, "__name__", source), error)


def create_server() -> EngramServer:
    from . import code_actions, commands, completion, hover, lifecycle, sync

    server = EngramServer()
    for module in (lifecycle, sync, completion, hover, code_actions, commands):
        module.register(server)
    return server


def run_server(args) -> int:
    # Indexing runs Python on an executor thread; a short GIL switch interval keeps the event loop's turns short.
    sys.setswitchinterval(0.001)
    level = getattr(args, "log_level", "info").upper()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if getattr(args, "log_file", None):
        handlers.append(logging.FileHandler(Path(args.log_file)))
    logging.basicConfig(level=level, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    server = create_server()
    if getattr(args, "tcp", False):
        server.start_tcp(args.host, args.port)
    else:
        server.start_io()
    return 0
