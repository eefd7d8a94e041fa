"""CrossCodeEval-style targets: lines whose completion needs a name defined in another file of the project.

Static analysis with Python's ``ast``: a target line uses a name (a called or referenced function, class, constant,
or a method/attribute after a dot) that is defined in exactly one or two other files of the project, is not defined
in the current file, and does not appear in the code above the line except in its imports — the first use, which
the file alone cannot answer. The cursor sits just before that name, as CrossCodeEval places it (``cursor="name"``:
after ``x.`` for ``x.method``), so the completion is the name and the rest of the line — what a definition can
answer; ``cursor="line"`` puts it after the line's indentation instead (the evaluation of 2026-12-02 did, and found
the model writing another plausible line, definition or not).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import datetime
import json
import logging
import os
import pathlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SKIP_START = ("def ", "class ", "async def ", "import ", "from ", "#", "@", '"', "'", "return\n")
BUILTIN = frozenset(dir(builtins))
# attribute names that usually belong to builtin types or the standard library, not to the project
COMMON_ATTRS = frozenset(n for t in (dict, list, str, set, bytes, int, json, os, os.path, re, asyncio, logging,
                                     datetime.datetime, pathlib.Path) for n in dir(t))
MAX_DEFINERS = 2        # a name defined in more files than this (``run``, ``get``) has no single answer


@dataclass(frozen=True)
class Span:
    path: str
    start_line: int
    end_line: int


def definitions(tree: ast.Module) -> dict[str, list[tuple[int, int]]]:
    """Name -> (start, end) lines of the module-level functions, classes and assignments and the methods of its
    classes."""
    out: dict[str, list[tuple[int, int]]] = {}

    def add(name: str, node: ast.AST) -> None:
        if len(name) > 2 and not (name.startswith("__") and name.endswith("__")):
            out.setdefault(name, []).append((node.lineno, node.end_lineno or node.lineno))

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            add(node.name, node)
        elif isinstance(node, ast.ClassDef):
            add(node.name, node)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    add(item.name, item)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    add(target.id, node)
    return out


def local_names(tree: ast.Module) -> set[str]:
    """Every name the file binds anywhere (functions, classes, arguments, assignments, loop variables)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def used_by_line(tree: ast.Module) -> dict[int, list[tuple[int, str]]]:
    """Line (1-based) -> (UTF-8 byte column where the name starts, name) of the names loaded and attributes read by
    the code on it, in source order (one tree walk)."""
    found: dict[int, list[tuple[int, str]]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.setdefault(node.lineno, []).append((node.col_offset, node.id))
        elif isinstance(node, ast.Attribute) and node.end_lineno == node.lineno:
            found.setdefault(node.lineno, []).append(((node.end_col_offset or 0) - len(node.attr), node.attr))
    return {line: sorted(names) for line, names in found.items()}


def first_seen(lines: list[str]) -> dict[str, int]:
    """Identifier -> the first line index (0-based) where it appears outside an import."""
    first: dict[str, int] = {}
    for i, line in enumerate(lines):
        if not line.lstrip().startswith(("import ", "from ")):
            for name in _IDENT.findall(line):
                first.setdefault(name, i)
    return first


def project_targets(root: Path, rng: random.Random, limit: int, per_file: int = 2, cursor: str = "name",
                    absent: bool = False) -> list[dict]:
    """Up to ``limit`` targets of the project under ``root``, at most ``per_file`` per file, in a seeded order;
    ``cursor`` is ``"name"`` (just before the cross-file name) or ``"line"`` (after the indentation). ``absent``:
    only names that appear nowhere else in the file, imports and the code after the line included (the issue's
    definition: what the file alone cannot show; in practice members, ``x.name``, of project classes)."""
    files = {}
    for f in sorted(root.rglob("*.py")):
        if "_pb2" in f.name:  # generated protobuf code
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        try:
            files[f.relative_to(root).as_posix()] = (text, ast.parse(text))
        except (SyntaxError, ValueError):
            continue
    defs = {path: definitions(tree) for path, (_, tree) in files.items()}
    definers: dict[str, list[Span]] = {}
    for path, names in defs.items():
        for name, spans in names.items():
            definers.setdefault(name, []).extend(Span(path, s, e) for s, e in spans)
    found = []
    for path, (text, tree) in files.items():
        lines = text.split("\n")
        local = local_names(tree)
        uses = used_by_line(tree)
        seen = first_seen(lines)
        counts = Counter(_IDENT.findall(text))
        candidates = []
        for i, line in enumerate(lines):
            s = line.strip()
            if not 8 <= len(s) <= 100 or s.startswith(SKIP_START) or i < 5:
                continue
            used = uses.get(i + 1, [])
            for col, name in used:
                spans = [sp for sp in definers.get(name, []) if sp.path != path]
                if not spans or name in local or name in BUILTIN or name in COMMON_ATTRS or name in defs[path]:
                    continue
                if len({sp.path for sp in spans}) > MAX_DEFINERS:
                    continue
                if seen.get(name, i) < i:
                    continue
                if absent and counts[name] > Counter(_IDENT.findall(line))[name]:  # named on another line
                    continue
                at = len(line.encode("utf-8")[:col].decode("utf-8", "replace"))  # ast columns count bytes
                if cursor == "line":
                    at = len(line) - len(line.lstrip())
                elif line[at:at + len(name)] != name:
                    continue
                candidates.append({"path": path, "line": i + 1, "target": s, "name": name,
                                   "defined": [sp.__dict__ for sp in spans],
                                   "prefix": "\n".join(lines[:i]) + "\n" + line[:at],
                                   "suffix": "\n" + "\n".join(lines[i + 1:])})
                break
        rng.shuffle(candidates)
        found.extend(candidates[:per_file])
    rng.shuffle(found)
    return found[:limit]
