"""The server's one typed configuration, parsed once from the client's camelCase ``engram`` settings.

Every field has a default, so an empty or missing settings object gives a working server. An unknown key or an
invalid value never raises: it becomes a warning naming the key (shown with window/showMessage) and the default
is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from engram_ls.inference import InferenceSettings, ModelSettings
from engram_ls.retrieval import IndexSettings

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class CompletionSettings:
    enabled: bool = True
    debounce_ms: int = 150
    max_tokens: int = 48
    context_snippets: int = 3
    # tokens of prompt and answer: on a CPU, reading the prompt is most of a completion's latency (a keystroke
    # re-reads what follows the cursor), so inline completion stays well below the model's context length
    context_tokens: int = 1024
    # the most tokens of the text after the cursor in its prompt (0: a quarter of the code's room). The FIM prompt
    # puts them after the prefix, so every keystroke re-reads them all; but a cap of 64 halved the 0.5B model's
    # exact match (0.28 -> 0.14 on 36 targets) while saving a quarter of a key's time: off by default
    suffix_tokens: int = 0


@dataclass
class HoverSettings:
    use_model: bool = True
    model_timeout_ms: int = 4000
    max_tokens: int = 96


@dataclass
class ServerConfig:
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    hover: HoverSettings = field(default_factory=HoverSettings)
    log_level: str = "info"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _assign(target: Any, values: dict, prefix: str, warnings: list[str]) -> None:
    """Copies camelCase ``values`` onto dataclass ``target``, checking each value's type against its default."""
    known = {f.name: f for f in fields(target)}
    for key, value in values.items():
        name = snake(key)
        path = f"{prefix}{key}"
        if name not in known or name.startswith("_"):
            warnings.append(f"unknown setting '{path}' ignored")
            continue
        current = getattr(target, name)
        if is_dataclass(current):
            if isinstance(value, dict):
                _assign(current, value, path + ".", warnings)
            else:
                warnings.append(f"setting '{path}' must be an object; using defaults")
            continue
        expected = type(current) if current is not None else None
        ok = (value is None and name in ("path", "url")) or expected is None and isinstance(value, str) or (
            expected is not None and (isinstance(value, expected) and not (expected is int and isinstance(value, bool))
                                      or expected is float and isinstance(value, int) and not isinstance(value, bool)))
        if not ok:
            warnings.append(f"setting '{path}' has an invalid value {value!r}; using the default {current!r}")
            continue
        setattr(target, name, float(value) if expected is float else value)


def parse(settings: Any) -> tuple[ServerConfig, list[str]]:
    """``(config, warnings)`` from the client's ``engram`` settings object (or None)."""
    config = ServerConfig()
    warnings: list[str] = []
    if settings is None or settings == []:  # Lua's empty table encodes as [] as well as {}
        return config, warnings
    if not isinstance(settings, dict):
        return config, [f"settings must be an object, got {type(settings).__name__}; using defaults"]
    settings = dict(settings)
    if "engram" in settings and isinstance(settings["engram"], dict) and len(settings) == 1:
        settings = settings["engram"]  # accept the section wrapped in its name too

    models = settings.pop("models", None)
    if models is not None:
        if not isinstance(models, dict):
            warnings.append("setting 'models' must be an object; using defaults")
        else:
            for role, value in models.items():
                if role not in ("coding", "research"):
                    warnings.append(f"unknown setting 'models.{role}' ignored")
                elif not isinstance(value, dict):
                    warnings.append(f"setting 'models.{role}' must be an object; using defaults")
                else:
                    _assign(getattr(config.inference, role), value, f"models.{role}.", warnings)
    backend = settings.pop("backend", None)
    if backend is not None:
        if not isinstance(backend, dict):
            warnings.append("setting 'backend' must be an object; using defaults")
        else:
            backend = dict(backend)
            if "kind" in backend:
                backend["backend"] = backend.pop("kind")
            _assign(config.inference, backend, "backend.", warnings)
    inference_extra = settings.pop("inference", None)
    if isinstance(inference_extra, dict):
        _assign(config.inference, inference_extra, "inference.", warnings)
    elif inference_extra is not None:
        warnings.append("setting 'inference' must be an object; using defaults")
    _assign(config, settings, "", warnings)

    for problem in config.inference.validate():
        warnings.append(f"invalid model setting: {problem}; using defaults for it")
        _reset_invalid(config.inference, problem)
    for problem in config.index.validate():
        warnings.append(f"invalid index setting: {problem}; using defaults")
        config.index = IndexSettings()
    if config.log_level not in LOG_LEVELS:
        warnings.append(f"setting 'logLevel' must be one of {', '.join(LOG_LEVELS)}; using 'info'")
        config.log_level = "info"
    for name, lo, hi in (("debounce_ms", 0, 5000), ("max_tokens", 1, 1024), ("context_snippets", 0, 20),
                         ("context_tokens", 256, 131072), ("suffix_tokens", 0, 131072)):
        value = getattr(config.completion, name)
        if not lo <= value <= hi:
            warnings.append(f"setting 'completion.{camel(name)}' must be in {lo}..{hi}; using the default")
            setattr(config.completion, name, getattr(CompletionSettings(), name))
    return config, warnings


def _reset_invalid(inference: InferenceSettings, problem: str) -> None:
    key = problem.split(":", 1)[0]
    default = InferenceSettings()
    if key.count(".") == 2:  # role.sampling.field: back to the role's tuned value
        role, _, name = key.split(".")
        setattr(getattr(inference, role).sampling, name, getattr(getattr(default, role).sampling, name))
    elif "." in key:
        role, name = key.split(".", 1)
        setattr(getattr(inference, role), name, getattr(ModelSettings(), name))
    elif key == "url" and inference.backend == "openai" and not inference.url:
        inference.backend = default.backend
    elif hasattr(default, key):
        setattr(inference, key, getattr(default, key))
