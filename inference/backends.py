"""Model backends behind the worker protocol, in a registry: ``llama`` (in-process llama-cpp-python, the default),
``openai`` (an OpenAI-compatible HTTP server: llama-server, vLLM, TGI, Ollama) and ``stub`` (deterministic text, no
model: fast tests of everything around the model).

A backend counts tokens with the model's tokenizer and streams text pieces for a raw prompt or chat messages,
checking ``should_stop`` after every piece.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import time
from typing import Callable, Iterator
from urllib.parse import urlsplit

from .http_stream import HTTPStatusError, Unreachable, post_events

ShouldStop = Callable[[], bool]
log = logging.getLogger("engram_ls.worker")


class BackendError(Exception):
    """A backend failed; ``code`` is a protocol error code."""

    def __init__(self, message: str, code: str = "model_error"):
        super().__init__(message)
        self.code = code


DRY_BREAKERS = ["\n", ":", "\"", "*"]   # llama.cpp's default DRY sequence breakers


def _sampled_llama():
    """``Llama`` whose greedy sampler chain can hold DRY, which llama-cpp-python 0.3.36 builds in its C API and
    ``LlamaSampler.add_dry`` but does not expose in ``create_completion``. ``_init_sampler`` is private: this is
    tested against the pinned version (tests/inference/test_sampling.py)."""
    from llama_cpp import Llama, _internals

    class SampledLlama(Llama):
        dry: tuple | None = None   # (multiplier, base, allowed_length, penalty_last_n) for the next generation

        def _init_sampler(self, **kw):
            if self.dry is None or kw.get("grammar") is not None or kw.get("logits_processor") is not None:
                return super()._init_sampler(**kw)
            sampler = _internals.LlamaSampler()
            sampler.add_penalties(n_vocab=self._n_vocab, penalty_last_n=self.last_n_tokens_size,
                                  penalty_repeat=kw.get("repeat_penalty", 1.0),
                                  penalty_freq=kw.get("frequency_penalty", 0.0),
                                  penalty_present=kw.get("presence_penalty", 0.0))
            sampler.add_dry(self._model, *self.dry, DRY_BREAKERS)
            sampler.add_greedy()
            return sampler

    return SampledLlama


class LlamaBackend:
    """llama-cpp-python in this process: one loaded model, weights memory-mapped (shared between workers)."""

    name = "llama"

    def __init__(self, model: str, n_ctx: int = 4096, threads: int = 1, batch: int = 256, cache_mb: int = 128,
                 gpu_layers: int = 0, batch_threads: int = 0, **_):
        from llama_cpp import LlamaRAMCache

        self.llm = _sampled_llama()(model_path=model, n_ctx=n_ctx, n_threads=threads,
                                    n_threads_batch=batch_threads or threads,
                                    n_batch=batch, n_gpu_layers=gpu_layers, use_mmap=True, verbose=False)
        self.gpu_layers = self.llm.model_params.n_gpu_layers  # as llama.cpp received it
        if cache_mb > 0:
            self.llm.set_cache(LlamaRAMCache(capacity_bytes=cache_mb << 20))
        self.model_name = str(self.llm.metadata.get("general.name", os.path.basename(model)))
        self.n_ctx = self.llm.n_ctx()
        self.chat_template = "tokenizer.chat_template" in self.llm.metadata
        self.fim = len(self.llm.tokenize(b"<|fim_prefix|>", add_bos=False, special=True)) == 1

    def count(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=True))

    def _penalties(self, sampling, temperature: float) -> dict:
        """Penalty arguments for llama-cpp-python; arms DRY on the model for the generation that follows."""
        self.llm.dry = None
        if sampling is None:
            return {}
        if sampling.dry_multiplier > 0:
            if temperature > 0:
                raise BackendError("DRY sampling is built for greedy decoding (temperature 0) only", "bad_request")
            last_n = self.n_ctx if sampling.dry_penalty_last_n < 0 else sampling.dry_penalty_last_n
            self.llm.dry = (sampling.dry_multiplier, sampling.dry_base, sampling.dry_allowed_length, last_n)
        return {"repeat_penalty": sampling.repeat_penalty, "presence_penalty": sampling.presence_penalty,
                "frequency_penalty": sampling.frequency_penalty}

    def stream_prompt(self, prompt: str, max_tokens: int, temperature: float, stop: list[str],
                      should_stop: ShouldStop, sampling=None) -> Iterator[str]:
        from llama_cpp import StoppingCriteriaList

        tokens = self.llm.tokenize(prompt.encode("utf-8", "replace"), add_bos=False, special=True)
        criteria = StoppingCriteriaList([lambda ids, logits: should_stop()])
        for chunk in self.llm.create_completion(tokens, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                                stream=True, stopping_criteria=criteria, seed=0,
                                                **self._penalties(sampling, temperature)):
            yield chunk["choices"][0]["text"]
            if should_stop():
                return

    def stream_chat(self, messages: list[dict], max_tokens: int, temperature: float, stop: list[str],
                    should_stop: ShouldStop, sampling=None) -> Iterator[str]:
        # create_chat_completion takes no stopping criteria: the loop checks after every token instead.
        for chunk in self.llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=temperature,
                                                     stop=stop or None, stream=True, seed=0,
                                                     **self._penalties(sampling, temperature)):
            piece = chunk["choices"][0].get("delta", {}).get("content")
            if piece:
                yield piece
            if should_stop():
                return


class OpenAIBackend:
    """An OpenAI-compatible server (llama-server, vLLM, ...) over HTTP with server-sent events; stdlib only.

    FIM goes to ``/v1/completions`` as a raw prompt with the model's FIM tokens (built here, with the cross-file
    context); chat to ``/v1/chat/completions``. A refused or dropped connection is retried for ``RETRY_S`` so that
    a server restart is ridden out: a completion resumes where it broke (the text so far is appended to the
    prompt), a chat is asked again and the part already delivered is skipped. Token counts are estimated (three
    characters a token, on the safe side for code) because the remote tokenizer is a round-trip away. The API key
    comes from an environment variable and never appears in logs or messages.
    """

    name = "openai"
    RETRY_S = 15.0          # long enough for a llama-server restart (model load: a few seconds)
    BACKOFF_S = (0.1, 0.2, 0.5, 1.0)

    def __init__(self, url: str, n_ctx: int = 4096, remote_model: str = "", api_key_env: str = "", **_):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"bad server URL {url!r}", "bad_request")
        self.parts = parts
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base = parts.path.rstrip("/")
        if not self.base.endswith("/v1"):
            self.base += "/v1"
        self.model_name = remote_model or "remote"
        self.n_ctx = n_ctx
        self.chat_template = True
        self.fim = True
        self.key_env = api_key_env or "ENGRAM_LS_API_KEY"
        self.api_key = os.environ.get(api_key_env or "", "")
        if self.api_key and parts.scheme == "http" and not _is_loopback(parts.hostname):
            log.warning("the API key in $%s is sent over plain HTTP to %s: anyone on the network path can read "
                        "it; use an https:// URL", self.key_env, parts.hostname)

    def count(self, text: str) -> int:
        return len(text) // 3 + 1

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def _stream(self, endpoint: str, body: dict, should_stop: ShouldStop, piece_of, resume) -> Iterator[str]:
        """Streams text pieces, retrying a lost server; ``resume(body, text_so_far, pieces_so_far)`` gives the
        body of a retry and how many characters of its output to skip."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        produced: list[str] = []
        attempt_body, skip = body, 0
        first_failure, failures = None, 0
        connected = [False]

        def on_connect() -> None:
            connected[0] = True

        while True:
            connected[0] = False
            try:
                for event in post_events(self.parts, self.base + endpoint, attempt_body, headers, should_stop,
                                         on_connect):
                    piece = piece_of(event)
                    if piece and skip:
                        cut = min(skip, len(piece))
                        piece, skip = piece[cut:], skip - cut
                    if piece:
                        produced.append(piece)
                        first_failure, failures = None, 0
                        yield piece
                return
            except HTTPStatusError as e:
                raise self._status_error(e) from None
            except Unreachable as e:
                now = time.monotonic()
                if connected[0]:  # it answered this attempt's connect: the outage starts now, not at the last token
                    first_failure, failures = None, 0
                first_failure = first_failure or now
                reason = self._redact(str(e))
                if should_stop():
                    return
                if now - first_failure > self.RETRY_S:
                    raise BackendError(f"inference server {self.origin} unreachable for {now - first_failure:.0f} s:"
                                       f" {reason}", "backend_unavailable") from None
                log.warning("inference server %s: %s; retrying", self.origin, reason)
                end = time.monotonic() + self.BACKOFF_S[min(failures, len(self.BACKOFF_S) - 1)]
                failures += 1
                while time.monotonic() < end and not should_stop():
                    time.sleep(0.01)  # backoff between attempts, cut short by a cancel
                attempt_body, skip = resume(body, "".join(produced), len(produced))

    def _status_error(self, e: HTTPStatusError) -> BackendError:
        detail = self._redact(e.message)
        if e.status in (401, 403):
            given = f"the key in ${self.key_env}" if self.api_key else f"no key (${self.key_env} is not set)"
            return BackendError(f"inference server {self.origin} refused the request ({e.status} {e.reason}: "
                                f"{detail}): it was sent {given}; set ${self.key_env} to the server's API key",
                                "model_error")
        return BackendError(f"inference server {self.origin} answered {e.status} {e.reason}: {detail}",
                            "model_error")

    def stream_prompt(self, prompt, max_tokens, temperature, stop, should_stop, sampling=None):
        body = {"model": self.model_name, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature,
                "stream": True, **sampling_payload(sampling)}
        if stop:
            body["stop"] = list(dict.fromkeys(stop))

        def resume(body, text, pieces):  # continue the same prompt: the model picks up where it broke
            return {**body, "prompt": body["prompt"] + text, "max_tokens": max(1, body["max_tokens"] - pieces)}, 0

        def piece_of(event):
            return (event.get("choices") or [{}])[0].get("text")

        yield from self._stream("/completions", body, should_stop, piece_of, resume)

    def stream_chat(self, messages, max_tokens, temperature, stop, should_stop, sampling=None):
        body = {"model": self.model_name, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, "stream": True, **sampling_payload(sampling)}
        if stop:
            body["stop"] = list(dict.fromkeys(stop))

        def resume(body, text, pieces):  # greedy decoding repeats itself: ask again, skip what was delivered
            return body, len(text)

        def piece_of(event):
            return ((event.get("choices") or [{}])[0].get("delta") or {}).get("content")

        yield from self._stream("/chat/completions", body, should_stop, piece_of, resume)


def sampling_payload(sampling) -> dict:
    """Request fields for the repetition controls: the OpenAI ones (presence/frequency) always, llama-server's
    extensions (repeat_penalty, dry_*) only when they are switched on, so a strict server that rejects unknown
    fields still works with the neutral values."""
    if sampling is None:
        return {}
    body = {"presence_penalty": sampling.presence_penalty, "frequency_penalty": sampling.frequency_penalty}
    if sampling.repeat_penalty != 1.0:
        body["repeat_penalty"] = sampling.repeat_penalty
    if sampling.dry_multiplier > 0:
        body.update(dry_multiplier=sampling.dry_multiplier, dry_base=sampling.dry_base,
                    dry_allowed_length=sampling.dry_allowed_length, dry_penalty_last_n=sampling.dry_penalty_last_n)
    return body


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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

    def stream_prompt(self, prompt, max_tokens, temperature, stop, should_stop, sampling=None):
        yield from self._words(prompt, max_tokens, should_stop)

    def stream_chat(self, messages, max_tokens, temperature, stop, should_stop, sampling=None):
        yield from self._words(json.dumps(messages, sort_keys=True), max_tokens, should_stop)


BACKENDS = {"llama": LlamaBackend, "openai": OpenAIBackend, "stub": StubBackend}
