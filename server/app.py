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

from engram_ls.inference import Inference, InferenceError

from .config import ServerConfig, parse
from .state import Roots

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
        self._inference: Inference | None = None
        self._inference_task: asyncio.Task | None = None
        self.inference_error: str | None = None

    # -- configuration --------------------------------------------------------------------------------------------
    def apply_settings(self, settings) -> list[str]:
        """Parses settings into ``self.config``; reports each warning once with window/showMessage."""
        config, warnings = parse(settings)
        old = self.config
        self.config = config
        logging.getLogger("engram_ls").setLevel(config.log_level.upper())
        for warning in warnings:
            log.warning("%s", warning)
            self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, f"engram-ls: {warning}"))
        if self._inference_task is not None and old.inference != config.inference:
            asyncio.ensure_future(self.restart_inference())
        return warnings

    # -- models ---------------------------------------------------------------------------------------------------
    def start_inference(self) -> None:
        if self._inference_task is None:
            self._inference_task = asyncio.ensure_future(self._start_inference())

    async def _start_inference(self) -> Inference | None:
        inference = Inference(self.config.inference)
        try:
            await inference.start()
        except InferenceError as e:
            self.inference_error = str(e)
            log.error("model workers unavailable: %s", e)
            self.window_show_message(types.ShowMessageParams(
                types.MessageType.Error, f"engram-ls: model workers unavailable: {e}"))
            return None
        self.inference_error = None
        self._inference = inference
        return inference

    async def inference(self) -> Inference:
        """The started model workers; raises InferenceError when they cannot run."""
        self.start_inference()
        inference = await asyncio.shield(self._inference_task)
        if inference is None:
            raise InferenceError(self.inference_error or "model workers unavailable", "model_error")
        return inference

    async def restart_inference(self) -> None:
        old_task, self._inference_task = self._inference_task, None
        if old_task is not None:
            old = await old_task
            if old is not None:
                await old.close()
        self._inference = None
        self.start_inference()

    def inference_status(self) -> dict:
        if self._inference is not None:
            return self._inference.status()
        if self.inference_error:
            return {"state": "unavailable", "error": self.inference_error}
        return {"state": "starting" if self._inference_task else "not started"}

    async def close(self) -> None:
        if self._inference_task is not None:
            inference = await self._inference_task
            if inference is not None:
                await inference.close()
        await self.roots.save_all()

    # -- errors outside requests ----------------------------------------------------------------------------------
    def report_server_error(self, error: Exception, source) -> None:
        if isinstance(error, json.JSONDecodeError):
            self.protocol._send_response(None, None, JsonRpcParseError(f"invalid JSON: {error}").to_response_error())
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
