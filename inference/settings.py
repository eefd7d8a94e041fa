"""Inference settings: one typed model with defaults, bounds and clear validation messages."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace

from .models import SHIPPED, completion_model

BACKENDS = ("llama", "openai", "stub")
CONTEXT_STEP = 256   # llama.cpp's context padding
ROLES = ("coding", "research")


def physical_cores() -> int:
    """Cores this process may use (affinity-aware); llama.cpp gains nothing from hyper-threads."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class SamplingSettings:
    """llama.cpp's repetition controls for one role, sent with every request (``sampling`` in the generate frame).

    Penalties count only generated tokens (the prompt's names may be repeated freely). ``dry_multiplier`` 0 turns
    DRY off; DRY penalises extending a sequence that already occurred once it is longer than
    ``dry_allowed_length`` tokens, so an answer can repeat a name but not a sentence. Defaults per role are in
    ``ROLE_SAMPLING``, chosen by ``bench/repetition_bench.py``.
    """

    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1   # tokens DRY looks back over (-1: the whole context)

    _bounds = {"repeat_penalty": (1.0, 2.0), "presence_penalty": (-2.0, 2.0), "frequency_penalty": (-2.0, 2.0),
               "dry_multiplier": (0.0, 5.0), "dry_base": (1.0, 4.0), "dry_allowed_length": (1, 64),
               "dry_penalty_last_n": (-1, 131072)}

    def problems(self, prefix: str) -> list[str]:
        out = []
        for f in fields(self):
            lo, hi = self._bounds[f.name]
            value = getattr(self, f.name)
            kind = int if isinstance(lo, int) else (int, float)
            if not isinstance(value, kind) or isinstance(value, bool) or not lo <= value <= hi:
                out.append(f"{prefix}{f.name}: must be a{'n integer' if kind is int else ' number'} in {lo}..{hi} "
                           f"(got {value!r})")
        return out

    def frame(self) -> dict:
        return asdict(self)


# Chosen by measurement (bench/results/repetition.md; the README's "Explanations: which model"). Research: a
# mild repeat penalty ended the 0.5B model's loops on explain prompts (repeated 4-grams 0.34 -> 0.0 on the first
# one) without costing facts. Coding: neutral — code repeats names and lines by nature, and completions (FIM) run
# on this role too.
ROLE_SAMPLING = {
    "coding": SamplingSettings(),
    "research": SamplingSettings(repeat_penalty=1.15),
}


@dataclass
class ModelSettings:
    """One role's model and its worker pool. ``path=None`` means the shipped default model (for the coding role
    chosen by the machine: ``InferenceSettings`` fills it in); ``sampling=None`` the role's tuned repetition
    controls (``ROLE_SAMPLING``)."""

    path: str | None = None
    pool_size: int = 1
    threads: int = 0            # 0: split the cores evenly over all workers
    context_length: int = 4096
    batch_size: int = 256
    prompt_cache_mb: int = 128  # RAM cache of KV states, so alternating prompt prefixes keep their reuse
    gpu_layers: int = 0         # llama.cpp's n_gpu_layers: layers offloaded to a GPU build (-1: all; 0: CPU only)
    sampling: SamplingSettings | None = None

    _bounds = {"pool_size": (1, 16), "threads": (0, 256), "context_length": (256, 131072),
               "batch_size": (8, 4096), "prompt_cache_mb": (0, 65536),
               "gpu_layers": (-1, 10000)}


@dataclass
class InferenceSettings:
    """Models per role, backend, and the time limits the pools enforce."""

    coding: ModelSettings = field(default_factory=ModelSettings)
    research: ModelSettings = field(default_factory=ModelSettings)
    backend: str = "llama"
    url: str | None = None               # base URL of an OpenAI-compatible server (backend "openai")
    api_key_env: str = "ENGRAM_LS_API_KEY"   # the key is read from this environment variable, never from settings
    remote_model: str = ""               # model name sent to the remote server
    request_timeout_s: float = 300.0     # a generation still running after this is stopped with an error
    heartbeat_s: float = 2.0             # ping interval
    hang_timeout_s: float = 10.0         # no pong for this long: the worker is hung and is restarted
    startup_timeout_s: float = 120.0
    max_restarts: int = 5                # restarts within a minute before a pool gives up
    stub_delay_ms: int = 0               # stub backend only: simulated time per token

    def __post_init__(self) -> None:
        if self.coding.path is None:
            # completions (and edits) use the 1.5B model where it is installed and the cores allow: it uses
            # cross-file context far better (issue 13); else the 0.5B model, as before
            self.coding.path = completion_model(physical_cores())
        for role in ROLES:
            model = getattr(self, role)
            if model.sampling is None:
                model.sampling = replace(ROLE_SAMPLING[role])

    def validate(self) -> list[str]:
        """'field: reason' lines for every invalid value (empty when valid)."""
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"backend: must be one of {', '.join(BACKENDS)} (got {self.backend!r})")
        if self.backend == "openai" and not self.url:
            problems.append("url: required with backend 'openai'")
        if self.url is not None and not str(self.url).startswith(("http://", "https://")):
            problems.append(f"url: must start with http:// or https:// (got {self.url!r})")
        for name in ("request_timeout_s", "heartbeat_s", "hang_timeout_s", "startup_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                problems.append(f"{name}: must be a positive number (got {value!r})")
        for role in ROLES:
            model = getattr(self, role)
            problems += model.sampling.problems(f"{role}.sampling.") if model.sampling is not None else []
            for f in fields(model):
                lo_hi = ModelSettings._bounds.get(f.name)
                value = getattr(model, f.name)
                if lo_hi is not None and (not isinstance(value, int) or not lo_hi[0] <= value <= lo_hi[1]):
                    problems.append(f"{role}.{f.name}: must be an integer in {lo_hi[0]}..{lo_hi[1]} (got {value!r})")
                elif f.name == "context_length" and value % CONTEXT_STEP:
                    # llama.cpp rounds the context up to a multiple of 256 and reports that, while
                    # llama-cpp-python's token buffer keeps the size asked for: a prompt packed for the
                    # reported size overflows it (a broadcast ValueError in every completion)
                    problems.append(f"{role}.context_length: must be a multiple of {CONTEXT_STEP} (got {value})")
            if model.path is not None and model.path not in SHIPPED and not os.path.isfile(model.path):
                problems.append(f"{role}.path: no such model file or shipped model name {model.path!r} "
                                f"(shipped: {', '.join(SHIPPED)})")
        return problems

    def threads_for(self, role: str) -> int:
        model = getattr(self, role)
        if model.threads:
            return model.threads
        workers = self.coding.pool_size + self.research.pool_size
        return max(1, physical_cores() // workers)

    def batch_threads_for(self, role: str) -> int:
        """Threads reading a prompt. A coding worker's prompt reading is most of a keystroke's latency, and rarely
        meets the research worker's: with ``threads`` 0 it reads with every core (shared by the coding pool), while
        generating keeps the split. On 2 cores (bench/results/prompt-threads.md): alone 0.56x the time; reading
        beside the research worker, both ~1.2x slower; both roles on every core, 1.6-2.6x slower (llama.cpp's threads
        wait for each other on busy cores) — so research keeps its share."""
        if role != "coding" or self.coding.threads:
            return self.threads_for(role)
        return max(1, physical_cores() // self.coding.pool_size)
