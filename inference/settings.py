"""Inference settings: one typed model with defaults, bounds and clear validation messages."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from .models import SHIPPED

BACKENDS = ("llama", "openai", "stub")
ROLES = ("coding", "research")


def physical_cores() -> int:
    """Cores this process may use (affinity-aware); llama.cpp gains nothing from hyper-threads."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ModelSettings:
    """One role's model and its worker pool. ``path=None`` means the shipped default model."""

    path: str | None = None
    pool_size: int = 1
    threads: int = 0            # 0: split the cores evenly over all workers
    context_length: int = 4096
    batch_size: int = 256
    prompt_cache_mb: int = 128  # RAM cache of KV states, so alternating prompt prefixes keep their reuse
    gpu_layers: int = 0         # llama.cpp's n_gpu_layers: layers offloaded to a GPU build (-1: all; 0: CPU only)

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
            for f in fields(model):
                lo_hi = ModelSettings._bounds.get(f.name)
                value = getattr(model, f.name)
                if lo_hi is not None and (not isinstance(value, int) or not lo_hi[0] <= value <= lo_hi[1]):
                    problems.append(f"{role}.{f.name}: must be an integer in {lo_hi[0]}..{lo_hi[1]} (got {value!r})")
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
