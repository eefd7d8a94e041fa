"""Code that parses: model-written code is checked with the language's parser before anyone is offered it.

Pure functions (no I/O, no LSP): ``ast`` for Python, the installed tree-sitter grammars for the other languages.

- ``parse_problem(code, language)``: the first syntax error of a piece of code, or None.
- ``edit_problem(document, first, last, new_text, language)``: the edit spliced into its document must parse (a
  document that was already broken must not get more syntax errors), so a rewritten method keeps its indentation
  and a fragment is judged in place.
- ``recursion_problem(original, rewritten, language)``: a rewrite that makes a function call itself when the
  original did not (``def getaddresses(v): return getaddresses(v)``).
- ``first_valid(generate, check)``: one retry with the problem fed back, then give up.
Languages without a parser here are not checked (None: nothing to report).
"""

from __future__ import annotations

import ast
import importlib
import re
import textwrap
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Awaitable, Callable

GRAMMARS = {
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
}
SUPPORTED = frozenset(GRAMMARS) | {"python"}
PYTHON_GRAMMAR = ("tree_sitter_python", "language")  # only to count errors in a document that was already broken
ALIASES = {"py": "python", "python3": "python", "py3": "python", "js": "javascript", "jsx": "javascript",
           "node": "javascript", "mjs": "javascript", "cjs": "javascript", "ts": "typescript", "mts": "typescript",
           "rs": "rust", "golang": "go", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp", "hh": "cpp",
           "h": "c", "rb": "ruby"}
EXTENSIONS = {".py": "python", ".pyi": "python", ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript",
              ".cjs": "javascript", ".ts": "typescript", ".mts": "typescript", ".tsx": "tsx", ".go": "go",
              ".rs": "rust", ".java": "java", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp",
              ".hpp": "cpp", ".hh": "cpp", ".rb": "ruby"}


@dataclass(frozen=True)
class Problem:
    language: str
    line: int          # 1-based, in the text that was checked
    message: str

    def __str__(self) -> str:
        return f"{self.language} line {self.line}: {self.message}"


def language_of(name: str) -> str | None:
    """A checkable language from a fence tag (``py``, ``typescript``…) or a file path; None when unknown."""
    tag = name.strip().lower()
    if tag in SUPPORTED:
        return tag
    if tag in ALIASES:
        return ALIASES[tag]
    return EXTENSIONS.get(PurePosixPath(tag).suffix)


_parsers: dict = {}


def _parser(language: str):
    parser = _parsers.get(language)
    if parser is None:
        from tree_sitter import Language, Parser

        module, attr = PYTHON_GRAMMAR if language == "python" else GRAMMARS[language]
        parser = Parser(Language(getattr(importlib.import_module(module), attr)()))
        _parsers[language] = parser
    return parser


def _tree(code: str, language: str):
    return _parser(language).parse(code.encode("utf-8", "surrogatepass"))


def _error_nodes(node, out: list, limit: int = 1000) -> list:
    if len(out) >= limit:
        return out
    if node.type == "ERROR" or node.is_missing:
        out.append(node)
        return out
    if node.has_error:
        for child in node.children:
            _error_nodes(child, out, limit)
    return out


def _ts_problem(code: str, language: str) -> Problem | None:
    root = _tree(code, language).root_node
    if not root.has_error:
        return None
    errors = _error_nodes(root, [])
    if not errors:
        return Problem(language, 1, "syntax error")
    node = errors[0]
    what = f"missing {node.type}" if node.is_missing else "syntax error"
    return Problem(language, node.start_point[0] + 1, what)


def _ts_error_count(code: str, language: str) -> int:
    return len(_error_nodes(_tree(code, language).root_node, []))


def _py_problem(code: str) -> Problem | None:
    try:
        ast.parse(code)
    except SyntaxError as e:
        return Problem("python", e.lineno or 1, e.msg)
    except ValueError as e:  # e.g. NUL bytes
        return Problem("python", 1, str(e))
    return None


def parse_problem(code: str, language: str | None) -> Problem | None:
    """The first syntax error of ``code`` (dedented first, so a method lifted out of its class still parses)."""
    if language not in SUPPORTED:
        return None
    if language == "python":
        problem = _py_problem(code)
        if problem is not None:
            dedented = _py_problem(textwrap.dedent(code))
            return None if dedented is None else problem
        return None
    return _ts_problem(code, language)


def splice(document: str, first: int, last: int, new_text: str) -> str:
    """``document`` with lines ``first``..``last`` (0-based, inclusive) replaced by ``new_text``."""
    lines = document.splitlines(keepends=True)
    replacement = new_text.rstrip("\n") + "\n" if new_text else ""
    return "".join(lines[:first]) + replacement + "".join(lines[last + 1:])


def edit_problem(document: str, first: int, last: int, new_text: str, language: str | None) -> Problem | None:
    """Whether replacing lines ``first``..``last`` of ``document`` with ``new_text`` keeps it parsing. When the
    document was already broken, the edit must not add syntax errors (counted by tree-sitter)."""
    if language not in SUPPORTED:
        return None
    after = splice(document, first, last, new_text)
    if language == "python":
        problem = _py_problem(after)
        if problem is None:
            return None
        if _py_problem(document) is None:
            return problem
        if _ts_error_count(after, "python") <= _ts_error_count(document, "python"):
            return None
        return Problem("python", first + 1, "the edit adds syntax errors to a file that already had some")
    if not _tree(after, language).root_node.has_error:
        return None
    if _ts_problem(document, language) is None:
        return _ts_problem(after, language)
    if _ts_error_count(after, language) <= _ts_error_count(document, language):
        return None
    return Problem(language, first + 1, "the edit adds syntax errors to a file that already had some")


def _indent(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        return ""
    prefix = lines[0][:len(lines[0]) - len(lines[0].lstrip())]
    for l in lines[1:]:
        while prefix and not l.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def match_indent(original: str, code: str) -> str:
    """``code`` indented like ``original`` (a model often returns a method of a class flush left)."""
    want, have = _indent(original), _indent(code)
    if want == have:
        return code
    body = textwrap.dedent(code)
    return textwrap.indent(body, want) if want else body


# -- self-recursion ---------------------------------------------------------------------------------------------
_FUNCTION_NODES = frozenset({"function_definition", "function_declaration", "function_item", "method_declaration",
                             "method_definition", "method", "singleton_method", "generator_function_declaration"})
_CALL_NODES = frozenset({"call_expression", "call", "method_invocation"})
_SELF_PREFIXES = ("", "self.", "this.", "cls.", "Self::", "self::", "this->", "self->", "@")


def _py_self_calls(code: str) -> set[str] | None:
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError):
        return None
    found = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id == fn.name:
                found.add(fn.name)
            elif (isinstance(f, ast.Attribute) and f.attr == fn.name and isinstance(f.value, ast.Name)
                  and f.value.id in ("self", "cls")):
                found.add(fn.name)
    return found


def _ts_name(fn) -> str:
    name = fn.child_by_field_name("name")
    if name is not None:
        return name.text.decode("utf-8", "replace")
    node = fn.child_by_field_name("declarator")  # C/C++: function_declarator -> declarator
    while node is not None and node.type not in ("identifier", "field_identifier", "qualified_identifier"):
        node = node.child_by_field_name("declarator")
    if node is None:
        return ""
    text = node.text.decode("utf-8", "replace")
    return text.split("::")[-1]


def _callee(call) -> str:
    if call.type == "method_invocation":  # Java: object.name(...)
        name, obj = call.child_by_field_name("name"), call.child_by_field_name("object")
        text = name.text.decode() if name is not None else ""
        return f"{obj.text.decode()}.{text}" if obj is not None else text
    if call.type == "call" and call.child_by_field_name("method") is not None:  # Ruby
        method, receiver = call.child_by_field_name("method"), call.child_by_field_name("receiver")
        text = method.text.decode()
        return f"{receiver.text.decode()}.{text}" if receiver is not None else text
    f = call.child_by_field_name("function")
    return f.text.decode("utf-8", "replace") if f is not None else ""


def _ts_self_calls(code: str, language: str) -> set[str]:
    found = set()
    stack = [_tree(code, language).root_node]
    while stack:
        node = stack.pop()
        if node.type in _FUNCTION_NODES:
            name = _ts_name(node)
            if name:
                inner = list(node.children)
                while inner:
                    n = inner.pop()
                    if n.type in _CALL_NODES and _callee(n) in {p + name for p in _SELF_PREFIXES}:
                        found.add(name)
                    inner.extend(n.children)
        stack.extend(node.children)
    return found


def self_calls(code: str, language: str | None) -> set[str]:
    """Names of the functions in ``code`` that call themselves (directly, or as ``self.name``/``this.name``)."""
    if language == "python":
        return _py_self_calls(code) or set()
    if language in GRAMMARS:
        return _ts_self_calls(code, language)
    return set()


def recursion_problem(original: str, rewritten: str, language: str | None) -> Problem | None:
    """A function that the rewrite makes call itself while the original did not: it would recurse forever (the
    classic failure of a small model asked to "refactor getaddresses")."""
    new = self_calls(rewritten, language) - self_calls(original, language)
    if not new:
        return None
    name = sorted(new)[0]
    line = next((i for i, l in enumerate(rewritten.splitlines(), 1) if re.search(rf"\b{re.escape(name)}\s*\(", l)
                 and not re.search(rf"\b(def|fn|func|function)\s+{re.escape(name)}\b", l)), 1)
    return Problem(language or "", line, f"the rewrite makes {name}() call itself (the original does not): "
                                         f"it would recurse")


# -- code in answers --------------------------------------------------------------------------------------------
_BLOCK = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(tag, code)`` of every fenced block of a Markdown answer (an unclosed last block counts)."""
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(text)]


def answer_problems(text: str, default_language: str | None = None) -> list[Problem]:
    """Syntax problems of the code blocks of an answer. A block is checked when its tag names a supported
    language, or, untagged, when ``default_language`` is given."""
    out = []
    for tag, code in fenced_blocks(text):
        language = language_of(tag) if tag else default_language
        problem = parse_problem(code, language) if code.strip() else None
        if problem is not None:
            out.append(problem)
    return out


# -- the retry policy -------------------------------------------------------------------------------------------
RETRY_NOTE = ("Your previous answer was rejected: {problem}. Fix that and return the complete corrected code in "
              "one fenced block.")


async def first_valid(generate: Callable[[str], Awaitable[str]], check: Callable[[str], Problem | None],
                      attempts: int = 2) -> tuple[str, Problem | None, int]:
    """Calls ``generate(feedback)`` until ``check`` accepts its code, at most ``attempts`` times (the first call
    gets no feedback, a retry is told what was wrong). Returns ``(code, problem or None, calls made)``."""
    feedback, code, problem = "", "", None
    for n in range(1, attempts + 1):
        code = await generate(feedback)
        problem = check(code)
        if problem is None:
            return code, None, n
        feedback = RETRY_NOTE.format(problem=problem)
    return code, problem, attempts
