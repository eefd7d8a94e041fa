"""``Inference``: the one object the server and the CLI use — pools per role, routing, retries, fallback.

Failure policy for a request whose worker dies or hangs: retry once on the same role's pool (a sibling or the
restarted worker), then once on the other role's pool, then fail with ``InferenceError``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from . import models
from .pool import Pool, Request, WorkerFailed
from .prompts import Snippet
from .router import classify
from .settings import ROLES, InferenceSettings, SamplingSettings

log = logging.getLogger("engram_ls.inference")
_ids = itertools.count(1)


class InferenceError(Exception):
    """A request could not be answered; ``code`` is the protocol error code, the message one clear line."""

    def __init__(self, message: str, code: str = "internal"):
        super().__init__(message)
        self.code = code


@dataclass
class Answer:
    text: str
    role: str
    model: str
    usage: dict = field(default_factory=dict)
    cancelled: bool = False
    finish: str = "stop"
    cited: list[Snippet] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    retried: bool = False


class Inference:
    def __init__(self, settings: InferenceSettings | None = None):
        self.settings = settings or InferenceSettings()
        self.pools: dict[str, Pool] = {}
        self._requests: dict[str, Request] = {}
        self._pending: dict[str, tuple[Request, str]] = {}
        self.started = False

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def _worker_args(self, role: str, model_path: str) -> list[str]:
        s, m = self.settings, getattr(self.settings, role)
        args = ["--backend", s.backend, "--role", role, "--threads", str(s.threads_for(role)),
                "--batch-threads", str(s.batch_threads_for(role)),
                "--ctx", str(m.context_length), "--batch", str(m.batch_size), "--cache-mb", str(m.prompt_cache_mb),
                "--gpu-layers", str(m.gpu_layers)]
        if model_path:
            args += ["--model", model_path]
        if s.backend == "openai":
            args += ["--url", s.url or "", "--remote-model", s.remote_model, "--api-key-env", s.api_key_env]
        if s.backend == "stub":
            args += ["--stub-delay-ms", str(s.stub_delay_ms)]
        return args

    async def start(self) -> None:
        problems = self.settings.validate()
        if problems:
            raise InferenceError("invalid inference settings: " + "; ".join(problems), "bad_request")
        loop = asyncio.get_running_loop()
        for role in ROLES:
            path = ""
            if self.settings.backend == "llama":
                try:
                    path = str(await loop.run_in_executor(None, models.resolve, getattr(self.settings, role).path))
                except models.ModelUnavailable as e:
                    raise InferenceError(str(e), "model_error") from None
            s = self.settings
            self.pools[role] = Pool(role, getattr(s, role).pool_size, self._worker_args(role, path),
                                    heartbeat_s=s.heartbeat_s, hang_timeout_s=s.hang_timeout_s,
                                    startup_timeout=s.startup_timeout_s, max_restarts=s.max_restarts,
                                    on_failure=self._on_failure)
        try:
            await asyncio.gather(*(pool.start() for pool in self.pools.values()))
        except Exception as e:
            await self.close()
            raise InferenceError(f"model workers failed to start: {e}", "model_error") from None
        except BaseException:  # cancelled while starting: stop the workers already up, then let it propagate
            await self.close()
            raise
        self.started = True

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()), return_exceptions=True)
        self.started = False

    async def __aenter__(self) -> "Inference":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- failure policy -------------------------------------------------------------------------------------------
    def _on_failure(self, req: Request, reason: str) -> None:
        role = req.pools_tried[-1]
        other = "research" if role == "coding" else "coding"
        req.retried = True
        if req.pools_tried.count(role) < 2 and not self.pools[role].failed:
            log.warning("%s; retrying request %s on the %s pool", reason, req.id, role)
            self.pools[role].submit(req, front=True)
        elif other not in req.pools_tried and other in self.pools and not self.pools[other].failed:
            log.warning("%s; falling back to the %s pool for request %s", reason, other, req.id)
            self.pools[other].submit(req, front=True)
        elif req.future is not None and not req.future.done():
            req.future.set_exception(InferenceError(f"request failed after retry and fallback: {reason}",
                                                    "model_error"))

    # -- requests -------------------------------------------------------------------------------------------------
    async def _run(self, role: str, fields: dict, snippets: Sequence[Snippet], on_token, request_id) -> Answer:
        if not self.started:
            raise InferenceError("inference is not started", "internal")
        rid = str(request_id) if request_id is not None else f"r{next(_ids)}"
        frame = {"type": "generate", "id": rid, "stream": True, "temperature": 0.0,
                 "deadline": self.settings.request_timeout_s,
                 "sampling": getattr(self.settings, role).sampling.frame(),  # the role's repetition controls
                 "snippets": [asdict(s) for s in snippets], **fields}
        req = Request(rid, frame, on_token, asyncio.get_running_loop().create_future())
        pool = self.pools[role]
        if pool.failed:
            other = "research" if role == "coding" else "coding"
            if self.pools[other].failed:
                raise InferenceError(pool.failed, "model_error")
            role, pool = other, self.pools[other]
        self._requests[rid] = req
        pool.submit(req)
        try:
            frame = await asyncio.wait_for(asyncio.shield(req.future),
                                           self.settings.request_timeout_s + self.settings.hang_timeout_s)
        except asyncio.TimeoutError:
            self.pools[req.pools_tried[-1]].cancel(req)
            raise InferenceError(f"request {rid} timed out after {self.settings.request_timeout_s:.0f} s",
                                 "deadline") from None
        except asyncio.CancelledError:
            self.pools[req.pools_tried[-1]].cancel(req)
            raise
        finally:
            self._requests.pop(rid, None)
        served_by = req.pools_tried[-1]
        if frame.get("type") == "error":
            raise InferenceError(str(frame.get("message")), str(frame.get("code", "internal")))
        cited = [snippets[i] for i in frame.get("cited") or [] if 0 <= i < len(snippets)]
        return Answer(text=str(frame.get("text", "")), role=served_by,
                      model=str(self.pools[served_by].hello.get("model")), usage=frame.get("usage") or {},
                      cancelled=frame.get("finish") == "cancelled" or req.cancelled,
                      finish=str(frame.get("finish")), cited=cited, timings=frame.get("timings") or {},
                      retried=req.retried)

    async def complete(self, prefix: str, suffix: str, snippets: Sequence[Snippet] = (), *, max_tokens: int = 64,
                       request_id: str | None = None, path: str = "", repo: str = "workspace",
                       stop: Sequence[str] = (), on_token: Callable[[str], None] | None = None,
                       budget: int | None = None, suffix_budget: int | None = None,
                       inline_stop: bool = False) -> Answer:
        """Fill in the middle with the coding model, with retrieved snippets as repo-level context; ``budget``:
        the tokens prompt and answer may use (default: the model's context length); ``suffix_budget``: the most
        tokens after the cursor in the prompt (default, or 0: a quarter of the code's room); ``inline_stop``: end
        where an inline suggestion ends (``prompts.suggestion_ended``: a blank line after its text, or the suffix's first
        line written again)."""
        return await self._run("coding", {"mode": "fim", "prefix": prefix, "suffix": suffix, "path": path,
                                          "repo": repo, "max_tokens": max_tokens, "stop": list(stop),
                                          "budget": budget, "suffix_budget": suffix_budget,
                                          "inline_stop": inline_stop},
                               snippets, on_token, request_id)

    async def ask(self, question: str, snippets: Sequence[Snippet] = (), *, role: str | None = None,
                  system: str | None = None, max_tokens: int = 512, request_id: str | None = None,
                  on_token: Callable[[str], None] | None = None, sampling: SamplingSettings | None = None) -> Answer:
        """A chat answer from the role's model (routed by ``classify`` when ``role`` is None), citing snippets.
        ``sampling`` overrides the role's repetition controls for this request (benchmarks compare them)."""
        if role is None:
            role, _ = classify(question)
        if role not in ROLES:
            raise InferenceError(f"unknown role {role!r}", "bad_request")
        fields = {"mode": "chat", "question": question, "system": system, "role": role, "max_tokens": max_tokens}
        if sampling is not None:
            fields["sampling"] = sampling.frame()
        return await self._run(role, fields, snippets, on_token, request_id)

    async def cancel(self, request_id: str) -> bool:
        """Stops a request: dropped from its queue, or its worker told to stop (within one token)."""
        req = self._requests.get(str(request_id))
        if req is None:
            return False
        self.pools[req.pools_tried[-1]].cancel(req)
        return True

    def status(self) -> dict:
        return {role: pool.status() for role, pool in self.pools.items()} | {
            "backend": self.settings.backend, "started": self.started}
