"""Model backends behind the worker protocol, in a registry: ``llama`` (in-process llama-cpp-python, the default),
``openai`` (an OpenAI-compatible HTTP server: llama-server, vLLM, TGI, Ollama) and ``stub`` (deterministic text, no
model: fast tests of everything around the model).

A backend counts tokens with the model's tokenizer and streams text pieces for a raw prompt or chat messages,
checking ``should_stop`` after every piece.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
from typing import Callable, Iterator
from urllib.parse import urlsplit

ShouldStop = Callable[[], bool]


class BackendError(Exception):
    """A backend failed; ``code`` is a protocol error code."""

    def __init__(self, message: str, code: str = "model_error"):
        super().__init__(message)
        self.code = code


class LlamaBackend:
    """llama-cpp-python in this process: one loaded model, weights memory-mapped (shared between workers)."""

    name = "llama"

    def __init__(self, model: str, n_ctx: int = 4096, threads: int = 1, batch: int = 256, cache_mb: int = 128,
                 **_):
        from llama_cpp import Llama, LlamaRAMCache

        self.llm = Llama(model_path=model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, n_batch=batch,
                         use_mmap=True, verbose=False)
        if cache_mb > 0:
            self.llm.set_cache(LlamaRAMCache(capacity_bytes=cache_mb << 20))
        self.model_name = str(self.llm.metadata.get("general.name", os.path.basename(model)))
        self.n_ctx = self.llm.n_ctx()
        self.chat_template = "tokenizer.chat_template" in self.llm.metadata
        self.fim = len(self.llm.tokenize(b"<|fim_prefix|>", add_bos=False, special=True)) == 1

    def count(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=True))

    def stream_prompt(self, prompt: str, max_tokens: int, temperature: float, stop: list[str],
                      should_stop: ShouldStop) -> Iterator[str]:
        from llama_cpp import StoppingCriteriaList

        tokens = self.llm.tokenize(prompt.encode("utf-8", "replace"), add_bos=False, special=True)
        criteria = StoppingCriteriaList([lambda ids, logits: should_stop()])
        for chunk in self.llm.create_completion(tokens, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                                stream=True, stopping_criteria=criteria, seed=0):
            yield chunk["choices"][0]["text"]
            if should_stop():
                return

    def stream_chat(self, messages: list[dict], max_tokens: int, temperature: float, stop: list[str],
                    should_stop: ShouldStop) -> Iterator[str]:
        # create_chat_completion takes no stopping criteria: the loop checks after every token instead.
        for chunk in self.llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=temperature,
                                                     stop=stop or None, stream=True, seed=0):
            piece = chunk["choices"][0].get("delta", {}).get("content")
            if piece:
                yield piece
            if should_stop():
                return


class OpenAIBackend:
    """An OpenAI-compatible server over HTTP with server-sent events; stdlib only. Token counts are estimated
    (about four characters a token) because the remote tokenizer is not at hand."""

    name = "openai"

    def __init__(self, url: str, n_ctx: int = 4096, remote_model: str = "", api_key_env: str = "", timeout: float = 300,
                 **_):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"bad server URL {url!r}", "bad_request")
        self.parts = parts
        self.base = parts.path.rstrip("/")
        if not self.base.endswith("/v1"):
            self.base += "/v1"
        self.model_name = remote_model or "remote"
        self.n_ctx = n_ctx
        self.chat_template = True
        self.fim = True
        self.timeout = timeout
        self.api_key = os.environ.get(api_key_env or "", "")

    def count(self, text: str) -> int:
        return len(text) // 4 + 1

    def _events(self, endpoint: str, body: dict, should_stop: ShouldStop) -> Iterator[dict]:
        cls = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.parts.hostname, self.parts.port, timeout=self.timeout)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            try:
                conn.request("POST", self.base + endpoint, json.dumps(body), headers)
                resp = conn.getresponse()
            except OSError as e:
                raise BackendError(f"inference server unreachable: {e}", "backend_unavailable") from None
            if resp.status != 200:
                detail = resp.read(500).decode("utf-8", "replace")
                raise BackendError(f"inference server answered {resp.status}: {detail}", "model_error")
            for raw in resp:
                if should_stop():
                    return
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    yield json.loads(data)
                except ValueError:
                    raise BackendError(f"bad event from inference server: {data[:200]}", "model_error") from None
        finally:
            conn.close()  # closing the connection is how a remote generation is cancelled

    def stream_prompt(self, prompt, max_tokens, temperature, stop, should_stop):
        body = {"model": self.model_name, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature,
                "stop": stop[:4], "stream": True}
        for event in self._events("/completions", body, should_stop):
            text = (event.get("choices") or [{}])[0].get("text")
            if text:
                yield text

    def stream_chat(self, messages, max_tokens, temperature, stop, should_stop):
        body = {"model": self.model_name, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, "stream": True}
        if stop:
            body["stop"] = stop[:4]
        for event in self._events("/chat/completions", body, should_stop):
            text = ((event.get("choices") or [{}])[0].get("delta") or {}).get("content")
            if text:
                yield text


class StubBackend:
    """Deterministic stand-in: echoes a digest of the prompt, then numbered words; ``delay_ms`` simulates the time
    a token takes. Runs in a real worker process, so pools, pipes, cancellation and crashes are exercised for real."""

    name = "stub"

    def __init__(self, n_ctx: int = 4096, delay_ms: int = 0, **_):
        self.model_name = "stub"
        self.n_ctx = n_ctx
        self.chat_template = True
        self.fim = True
        self.delay = delay_ms / 1000.0

    def count(self, text: str) -> int:
        return len(text) // 4 + 1

    def _words(self, seed_text: str, max_tokens: int, should_stop: ShouldStop) -> Iterator[str]:
        digest = hashlib.sha1(seed_text.encode("utf-8", "replace")).hexdigest()[:8]
        for i in range(max_tokens):
            if self.delay:
                end = time.monotonic() + self.delay
                while time.monotonic() < end and not should_stop():
                    time.sleep(min(0.005, self.delay))
            if should_stop():
                return
            yield f"stub_{digest}" if i == 0 else f" w{i}"

    def stream_prompt(self, prompt, max_tokens, temperature, stop, should_stop):
        yield from self._words(prompt, max_tokens, should_stop)

    def stream_chat(self, messages, max_tokens, temperature, stop, should_stop):
        yield from self._words(json.dumps(messages, sort_keys=True), max_tokens, should_stop)


BACKENDS = {"llama": LlamaBackend, "openai": OpenAIBackend, "stub": StubBackend}
