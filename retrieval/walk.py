"""Finds the workspace's indexable text files.

Honours .gitignore files (every level) and a project ``.engramignore`` with pathspec's gitwildmatch rules, skips
version-control and dependency folders, binary files (a NUL byte in the first 8 KiB), files over the size limit,
symlinks that leave the root or loop, and secret-bearing files unless ``include_secrets`` is set.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pathspec

from .secrets import SECRET_FILE_GLOBS
from .settings import IndexSettings

ALWAYS_SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "dist", "build", ".idea", ".eggs", "site-packages",
})
IGNORE_FILE = ".engramignore"

_secret_spec = pathspec.GitIgnoreSpec.from_lines(SECRET_FILE_GLOBS)


def is_secret_path(rel_path: str) -> bool:
    return _secret_spec.match_file(rel_path)


def is_binary(head: bytes) -> bool:
    return b"\0" in head[:8192]


def _read_spec(directory: Path, name: str) -> list[str]:
    try:
        return (directory / name).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


class WorkspaceFilter:
    """Decides, by relative path, what belongs to the index (ignore rules and secrets; not size or content)."""

    def __init__(self, root: Path, settings: IndexSettings):
        self.root = root
        self.settings = settings
        lines = list(settings.ignore) + _read_spec(root, IGNORE_FILE)
        self._project = pathspec.GitIgnoreSpec.from_lines(lines)
        self._gitignores: dict[str, pathspec.PathSpec] = {}

    def _gitignore(self, rel_dir: str) -> pathspec.PathSpec:
        spec = self._gitignores.get(rel_dir)
        if spec is None:
            spec = pathspec.GitIgnoreSpec.from_lines(_read_spec(self.root / rel_dir, ".gitignore"))
            self._gitignores[rel_dir] = spec
        return spec

    def excluded(self, rel_path: str, is_dir: bool = False) -> bool:
        parts = rel_path.split("/")
        if any(p in ALWAYS_SKIPPED_DIRS for p in (parts if is_dir else parts[:-1])):
            return True
        probe = rel_path + ("/" if is_dir else "")
        if self._project.match_file(probe):
            return True
        if not is_dir and not self.settings.include_secrets and is_secret_path(rel_path):
            return True
        for depth in range(len(parts)):
            rel_dir = "/".join(parts[:depth])
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            if self._gitignore(rel_dir).match_file(sub):
                return True
        return False


def read_text_file(path: Path, max_bytes: int) -> str | None:
    """The file's text, or None when it is missing, over ``max_bytes``, or binary. Invalid UTF-8 is replaced."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None  # a named pipe, socket or device would block or never end
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) > max_bytes or is_binary(data):
        return None
    return data.decode("utf-8", errors="replace")


def walk_files(root: Path, settings: IndexSettings, skip: tuple[Path, ...] = ()) -> Iterator[str]:
    """Relative posix paths of candidate files under ``root``, sorted, without following links out of the root.
    ``skip``: folders never entered (engram-ls's own cache, when it lies inside the workspace)."""
    root = root.resolve()
    skipped = {p.resolve() for p in skip}
    flt = WorkspaceFilter(root, settings)
    seen_dirs: set[tuple[int, int]] = set()
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        try:
            st = here.stat()
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen_dirs or here in skipped:
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        rel_dir = here.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames
                             if not (here / d).is_symlink() and not flt.excluded(prefix + d, is_dir=True))
        for name in sorted(filenames):
            rel = prefix + name
            full = here / name
            if full.is_symlink():
                try:
                    target = full.resolve(strict=True)
                    target.relative_to(root)
                except (OSError, ValueError, RuntimeError):
                    continue
                if not target.is_file():
                    continue
            if flt.excluded(rel) or not full.is_file():  # only regular files (not pipes, sockets, devices)
                continue
            yield rel
            count += 1
            if count >= settings.max_files:
                return
