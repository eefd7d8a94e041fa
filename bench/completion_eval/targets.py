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


def used_by_line(tree: ast.Module) -> dict[int, list[tuple[int, str, str | None]]]:
    """Line (1-based) -> (UTF-8 byte column where the name starts, name, receiver) of the names loaded and attributes
    read by the code on it, in source order (one tree walk); ``receiver`` is ``receiver_key`` of an attribute's
    object, None for a bare name."""
    found: dict[int, list[tuple[int, str, str | None]]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.setdefault(node.lineno, []).append((node.col_offset, node.id, None))
        elif isinstance(node, ast.Attribute) and node.end_lineno == node.lineno:
            found.setdefault(node.lineno, []).append(((node.end_col_offset or 0) - len(node.attr), node.attr,
                                                      receiver_key(node.value) or "?"))
    return {line: sorted(names, key=lambda u: u[:2]) for line, names in found.items()}


# -- where a receiver comes from ----------------------------------------------------------------------------------
# ``x.name`` is a target only when ``name`` is the project's: a member of a third-party object (``redis.hgetall``,
# ``executor.submit``, ``boto3.Session``) that happens to share a project definition's name is not one, and no
# context can be expected to show its definition. What the file itself says about ``x`` decides: how it is imported,
# annotated or made. Undecidable receivers stay (most are the project's own objects).
TYPING = frozenset({"Optional", "Union", "Any", "List", "Dict", "Set", "Tuple", "Type", "Callable", "Awaitable",
                    "Iterable", "Iterator", "Sequence", "Mapping", "ClassVar", "Annotated", "Literal", "Final",
                    "AsyncIterator", "AsyncGenerator", "Generator", "Coroutine", "None", "typing", "list", "dict",
                    "set", "tuple", "type", "str", "int", "float", "bool", "bytes", "object"})


def receiver_key(node: ast.AST) -> str | None:
    """The name an attribute's object goes back to: ``x`` for ``x``, ``self.a`` for ``self.a``; with a ``+`` when
    more follows (``x+`` for ``x.a.b(…)[0]``): then the name's type says where the chain starts, not what its
    last object is."""
    chain, more = [], False
    while True:
        if isinstance(node, ast.Call):
            node, more = node.func, True
        elif isinstance(node, (ast.Subscript, ast.Await, ast.Starred)):
            node, more = node.value, True
        elif isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        else:
            break
    if not isinstance(node, ast.Name):
        return None
    if node.id in ("self", "cls") and chain:
        return f"self.{chain[-1]}" + ("+" if more or len(chain) > 1 else "")
    return node.id + ("+" if more or chain else "")


def project_packages(root: Path) -> set[str]:
    """The top-level import names the project's own files provide."""
    return {p.stem if p.is_file() else p.name for p in root.iterdir()
            if (p.is_file() and p.suffix == ".py") or (p.is_dir() and any(p.rglob("*.py")))}


def module_file(root: Path, module: str) -> str | None:
    """The project file (relative path) a dotted module name resolves to, or None."""
    base = root.joinpath(*module.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f.relative_to(root).as_posix()
    return None


def receiver_origins(tree: ast.Module, path: str, root: Path, packages: set[str]) -> dict[str, set[str]]:
    """Receiver key -> what the file says it is: ``"third"`` (imported from, annotated as or made by something
    outside the project), ``"project"``, or ``"module:<file>"`` (a project module imported under that name)."""
    imports: dict[str, str] = {}
    here = path.split("/")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                if a.asname is None:
                    imports[top] = "project" if top in packages else "third"
                elif top in packages:
                    f = module_file(root, a.name)
                    imports[a.asname] = f"module:{f}" if f else "project"
                else:
                    imports[a.asname] = "third"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1] + (node.module.split(".") if node.module else [])
                module = ".".join(base)
            else:
                module = node.module or ""
            own = bool(node.level) or module.split(".")[0] in packages
            for a in node.names:
                name = a.asname or a.name
                if not own:
                    imports[name] = "third"
                else:
                    f = module_file(root, f"{module}.{a.name}")
                    imports[name] = f"module:{f}" if f else "project"

    def kinds(expr: ast.AST | None) -> set[str]:
        """What an annotation or a value expression says: ``"third"`` for a name imported from outside the project,
        ``"class:Foo"`` for a class (``Foo``, ``mod.Foo``, ``Optional[Foo]``, ``Foo(...)``), else ``"project"``."""
        if expr is None:
            return set()
        if isinstance(expr, ast.Await):
            expr = expr.value
        if isinstance(expr, ast.Call):
            expr = expr.func
        exprs = [expr]
        for n in ast.walk(expr):  # forward references: "Agent", Optional["Agent"]
            if isinstance(n, ast.Constant) and isinstance(n.value, str):
                try:
                    exprs.append(ast.parse(n.value.strip(), mode="eval").body)
                except SyntaxError:
                    pass
        refs = []
        for e in exprs:
            roots = {id(n.value) for n in ast.walk(e) if isinstance(n, ast.Attribute)}
            refs += [(n.value.id, n.attr) for n in ast.walk(e)
                     if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)]
            refs += [(n.id, n.id) for n in ast.walk(e) if isinstance(n, ast.Name) and id(n) not in roots]
        out = set()
        for head, last in refs:
            if head in TYPING or last in TYPING:
                continue
            if imports.get(head) == "third":
                out.add("third")
            elif last[0].isupper():
                out.add(f"class:{last}")
            elif head not in BUILTIN:
                out.add("project")
        return out

    origins: dict[str, set[str]] = {}
    for name, kind in imports.items():
        origins.setdefault(name, set()).add(kind)
        if kind == "project" and name[0].isupper():  # an imported class used as the receiver: Foo.create(...)
            origins[name].add(f"class:{name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            origins.setdefault(node.arg, set()).update(kinds(node.annotation))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            made = kinds(node.annotation) if isinstance(node, ast.AnnAssign) else set()
            if isinstance(node.value, (ast.Call, ast.Await)):
                made |= kinds(node.value)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                key = receiver_key(target) if isinstance(target, ast.Attribute) else getattr(target, "id", None)
                if key and made:
                    origins.setdefault(key, set()).update(made)
        elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            origins.setdefault(node.optional_vars.id, set()).update(kinds(node.context_expr))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    origins.setdefault(f"self.{item.target.id}", set()).update(kinds(item.annotation))
    return origins


@dataclass(frozen=True)
class ClassInfo:
    path: str
    start: int
    end: int
    bases: tuple[str, ...]
    members: frozenset[str]


def project_classes(files: dict[str, tuple[str, ast.Module]]) -> dict[str, list[ClassInfo]]:
    """Class name -> every class of that name in the project: where it is, its bases' names and its members
    (methods, class-level fields, nested classes, ``self.x`` set in its methods)."""
    out: dict[str, list[ClassInfo]] = {}
    for path, (_, tree) in files.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    members.update(t.id for t in item.targets if isinstance(t, ast.Name))
            members.update(n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
                           and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name) and n.value.id == "self")
            bases = []
            for b in node.bases:
                b = b.value if isinstance(b, ast.Subscript) else b
                bases += [b.attr] if isinstance(b, ast.Attribute) else [b.id] if isinstance(b, ast.Name) else []
            out.setdefault(node.name, []).append(ClassInfo(path, node.lineno, node.end_lineno or node.lineno,
                                                           tuple(bases), frozenset(members)))
    return out


NEUTRAL_BASES = frozenset({"object", "Generic", "Protocol", "ABC", "ABCMeta"})


def lineage(name: str, classes: dict[str, list[ClassInfo]], depth: int = 6) -> tuple[list[ClassInfo], bool]:
    """The project classes a class of that name is built from (itself and its bases, by name), and whether a base
    outside the project (``BaseModel``, ``Exception``) is among them."""
    found, outside, queue, seen = [], False, [(name, 0)], set()
    while queue:
        cls, level = queue.pop(0)
        if cls in seen or level > depth:
            continue
        seen.add(cls)
        if cls not in classes:
            outside |= cls not in NEUTRAL_BASES
            continue
        for info in classes[cls]:
            found.append(info)
            queue += [(b, level + 1) for b in info.bases]
    return found, outside


def ancestors(name: str, classes: dict[str, list[ClassInfo]]) -> set[str]:
    """The names of a project class's bases, theirs, and so on (not its own)."""
    return {c for info in lineage(name, classes)[0] for c in info.bases}


def imports_name(file: Path, name: str) -> bool:
    """Whether a module imports ``name`` (re-exports it: ``from .errors import TaskNotFoundError``); a generated
    protobuf module that builds a same-named message does not."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names)
               for node in ast.walk(tree))


def foreign(receiver: str | None, name: str, origins: dict[str, set[str]], spans: list[Span], root: Path,
            classes: dict[str, list[ClassInfo]], aliases: set[str]) -> str | None:
    """Why ``receiver.name`` is not a member of the project definition it was matched to, or None. ``aliases``:
    names the project binds to something other than a class (``MountPattern = Union[...]``): undecidable."""
    if receiver is None:
        return None
    chained = receiver.endswith("+")
    seen = origins.get(receiver.rstrip("+"), set())
    if chained:  # x.a.b.name: only a third-party start says something
        return "a third-party object" if seen == {"third"} else None
    typed = {k.split(":", 1)[1] for k in seen if k.startswith("class:")}
    if typed and "third" not in seen and not typed & aliases:
        known = [c for c in typed if c in classes]
        if not known:
            return "a class the project does not define"
        infos, outside = [], False
        for c in known:
            found, out = lineage(c, classes)
            infos += found
            outside |= out
        # the member of the class, of a base, or of a subclass (the object may be one)
        owners = infos + [info for c, same in classes.items() if set(known) & ancestors(c, classes) for info in same]
        if not any(sp.path == i.path and i.start <= sp.start_line <= i.end for sp in spans for i in owners):
            if any(name in i.members for i in infos):
                return "a field of its class, matched to another definition"
            return "a member of a third-party base" if outside else "not a member of its class"
    modules = {k.split(":", 1)[1] for k in seen if k.startswith("module:")}
    if modules and not modules & {sp.path for sp in spans} and not any(imports_name(root / m, name)
                                                                        for m in modules):
        return "a project module that does not define it"
    if seen == {"third"}:
        return "a third-party object"
    return None


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
    definition: what the file alone cannot show; in practice members, ``x.name``, of project classes). Members of
    receivers the file shows to be third-party are marked with the reason (``foreign``; None for the others), not
    left out, so that adding the mark kept every earlier target and its id."""
    packages = project_packages(root)
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
    classes = project_classes(files)
    definers: dict[str, list[Span]] = {}
    for path, names in defs.items():
        for name, spans in names.items():
            definers.setdefault(name, []).extend(Span(path, s, e) for s, e in spans)
    aliases = set(definers) - set(classes)
    found = []
    for path, (text, tree) in files.items():
        lines = text.split("\n")
        local = local_names(tree)
        uses = used_by_line(tree)
        seen = first_seen(lines)
        counts = Counter(_IDENT.findall(text))
        origins = receiver_origins(tree, path, root, packages)
        candidates = []
        for i, line in enumerate(lines):
            s = line.strip()
            if not 8 <= len(s) <= 100 or s.startswith(SKIP_START) or i < 5:
                continue
            used = uses.get(i + 1, [])
            for col, name, receiver in used:
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
                                   "foreign": foreign(receiver, name, origins, spans, root, classes, aliases),
                                   "defined": [sp.__dict__ for sp in spans],
                                   "prefix": "\n".join(lines[:i]) + "\n" + line[:at],
                                   "suffix": "\n" + "\n".join(lines[i + 1:])})
                break
        rng.shuffle(candidates)
        found.extend(candidates[:per_file])
    rng.shuffle(found)
    return found[:limit]
