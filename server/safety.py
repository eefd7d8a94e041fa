"""Where model-proposed edits may land: only files inside the workspace roots, after resolving symlinks.

The model never chooses a path — targets come from retrieval hits and the user's selection — and this check is the
last gate before an edit reaches the client (as a reviewable WorkspaceEdit, never written by the server itself).
"""

from __future__ import annotations

from pathlib import Path

from .convert import uri_to_path


class UnsafeEdit(ValueError):
    """An edit that would touch a file outside the workspace roots."""


def check_target(roots: list[Path], target: str | Path) -> Path:
    """The resolved path of ``target`` (a file URI or path) if it lies inside a root; UnsafeEdit otherwise."""
    path = uri_to_path(target) if isinstance(target, str) and target.startswith("file:") else Path(target)
    if path is None:
        raise UnsafeEdit(f"not a file URI: {target}")
    if not path.is_absolute():
        raise UnsafeEdit(f"relative path refused: {target}")
    if ".." in path.parts:
        raise UnsafeEdit(f"path with '..' refused: {target}")
    try:
        # a file that does not exist yet is judged by its nearest existing parent
        probe = path
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        real = probe.resolve(strict=True) / path.relative_to(probe)
    except (OSError, RuntimeError, ValueError) as e:
        raise UnsafeEdit(f"cannot resolve {target}: {e}") from None
    for root in roots:
        root = root.resolve()
        if real == root or root in real.parents:
            return real
    raise UnsafeEdit(f"outside the workspace roots: {target}")
