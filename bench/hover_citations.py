"""Hover citation precision over real stdio: the share of the code a hover cites that contains the hovered symbol.

For each workspace (real third-party code installed on the machine: site-packages packages, the VS Code client's
node_modules), the language server (``engram-ls serve``, the model off for hover so the fast path answers) indexes a
copy; then, for symbols the workspace defines (functions, classes, methods; TS interfaces and types), drawn at
random with one of their occurrences (the definition or a use; code only, never a comment or a string), the bench
opens the file, sends ``textDocument/hover`` at that position and reads the citations from the answer
(``[path:a-b](file://…)`` links). A citation is precise when its lines contain the symbol as a whole word — its
definition or a use. Also counted: whether the definition is among the citations, and precision on the lines the
hover actually shows (each snippet is cut to 8 lines), and precision without the citation of the hovered line's own
chunk (which always contains the symbol).

Run: ``python -m bench.hover_citations [--split dev|heldout] [--per-workspace N] [--tag T]``. Writes
bench/results/hover_citations[-heldout][-T].json/.md.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

from bench.nl_eval.sets import NODE, SUFFIX, _parser
from bench.retrieval_bench import copy_packages

OUT = Path(__file__).resolve().parent / "results"
SERVER = [sys.executable, "-m", "engram_ls.server.cli", "serve", "--log-level", "warning"]
# name -> (language, folders: site-packages packages for Python, node_modules-relative folders for JS/TS). The dev
# workspaces chose the ranking's symbol-query rules (ranking.SUBJECT_BOOST, SUBJECT_CUT); the held-out ones check them.
WORKSPACES = {
    "rich": ("python", ["rich"]),
    "jinja2": ("python", ["jinja2"]),
    "packaging": ("python", ["packaging"]),
    "js-yaml": ("javascript", ["js-yaml/lib"]),
    "semver": ("javascript", ["semver"]),
    "commander": ("javascript", ["commander/lib"]),
    "ajv": ("typescript", ["ajv/lib"]),
    "msal-common": ("typescript", ["@azure/msal-common/src"]),
}
HELDOUT = {
    "click": ("python", ["click"]),
    "parso": ("python", ["parso"]),
    "cattrs": ("python", ["cattrs"]),
    "markdown-it": ("javascript", ["markdown-it/lib"]),
    "undici": ("javascript", ["undici/lib"]),
    "msal-node": ("typescript", ["@azure/msal-node/src"]),
    "cheerio": ("typescript", ["cheerio/src"]),
}
PER_WORKSPACE = 40
SEED = 12
SHOWN_LINES = 8      # fast_markdown cuts each snippet to this many lines
MAX_FILE_BYTES = 400_000
_LINK = re.compile(r"\[([^\]\n]+?):(\d+)(?:-(\d+))?\]\((file://[^)#\s]+)#L\d+\)\n```[^\n]*\n(.*?)\n```", re.DOTALL)
_JS_DEFINES = ("function_declaration", "generator_function_declaration", "class_declaration", "method_definition",
               "interface_declaration", "type_alias_declaration", "enum_declaration", "abstract_class_declaration")
_JS_VALUES = ("arrow_function", "function_expression", "function", "class")
_JS_IDENTS = ("identifier", "property_identifier", "type_identifier", "shorthand_property_identifier")


def whole_word(name: str) -> re.Pattern:
    return re.compile(rf"(?<![A-Za-z0-9_$]){re.escape(name)}(?![A-Za-z0-9_$])")


# -- workspaces and symbols ----------------------------------------------------------------------------------------

def copy_js(folders: list[str], language: str, dest: Path) -> None:
    for folder in folders:
        src = NODE / folder
        for f in sorted(src.rglob("*")):
            if f.is_file() and f.name.endswith(SUFFIX[language]) and not f.name.endswith(".d.ts") and \
                    ".min." not in f.name and "node_modules" not in f.relative_to(src).parts and \
                    f.stat().st_size <= MAX_FILE_BYTES:
                out = dest / folder.replace("@", "") / f.relative_to(src)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, out)


def python_symbols(root: Path) -> tuple[dict, dict]:
    """(name -> definition sites [(path, line)], name -> occurrences [(path, line0, column)]) of the names a
    workspace's Python files define; occurrences are NAME tokens, so never inside a comment or a string."""
    defs: dict[str, list] = {}
    occurrences: dict[str, list] = {}
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).as_posix()
        text = f.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defs.setdefault(node.name, []).append((rel, node.lineno))
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.NAME:
                    column = len(tok.line[:tok.start[1]].encode("utf-16-le")) // 2     # the client's units
                    occurrences.setdefault(tok.string, []).append((rel, tok.start[0] - 1, column))
        except (tokenize.TokenError, SyntaxError):
            continue
    return defs, occurrences


def js_symbols(root: Path, language: str) -> tuple[dict, dict]:
    """The same for JavaScript / TypeScript, from tree-sitter: declarations, methods and functions or classes bound
    to a name; occurrences are identifier nodes."""
    parser = _parser(language)
    defs: dict[str, list] = {}
    occurrences: dict[str, list] = {}
    for f in sorted(root.rglob("*")):
        if not f.is_file() or not f.name.endswith(SUFFIX[language]):
            continue
        rel = f.relative_to(root).as_posix()
        data = f.read_bytes()
        lines = data.split(b"\n")
        stack = [parser.parse(data).root_node]
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            name = None
            if node.type in _JS_DEFINES:
                name = node.child_by_field_name("name")
            elif node.type == "variable_declarator" and node.child_by_field_name("value") is not None and \
                    node.child_by_field_name("value").type in _JS_VALUES:
                name = node.child_by_field_name("name")
            if name is not None and name.type in _JS_IDENTS:
                defs.setdefault(name.text.decode(), []).append((rel, node.start_point[0] + 1))
            if node.type in _JS_IDENTS:
                row, col = node.start_point
                column = len(lines[row][:col].decode("utf-8", "replace").encode("utf-16-le")) // 2
                occurrences.setdefault(node.text.decode(), []).append((rel, row, column))
    return defs, occurrences


def sample(defs: dict, occurrences: dict, n: int, rng: random.Random) -> list[dict]:
    """``n`` defined names (3+ characters, not dunders), each with one of its occurrences drawn at random."""
    names = sorted(name for name in defs if len(name) >= 3 and not name.startswith("__") and occurrences.get(name))
    out = []
    for name in rng.sample(names, min(n, len(names))):
        path, line, column = rng.choice(occurrences[name])
        at_definition = any(p == path and l == line + 1 for p, l in defs[name])
        out.append({"name": name, "path": path, "line": line, "column": column, "definitions": defs[name],
                    "at_definition": at_definition})
    return out


# -- the server ----------------------------------------------------------------------------------------------------

async def start(root: Path, cache: Path):
    config = ClientServerConfig(server_command=SERVER, server_env=dict(os.environ, ENGRAM_LS_CACHE=str(cache)))
    client = await config.start()
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        initialization_options={"backend": {"kind": "stub"}, "hover": {"useModel": False}}))
    return client


async def wait_indexed(client) -> dict:
    while True:
        status = await client.workspace_execute_command_async(types.ExecuteCommandParams("engram.status"))
        info = next(iter(status["index"].values()), None)
        if info and not info["indexing"]:
            return info
        await asyncio.sleep(0.1)


def citations(markdown: str, root: Path) -> list[dict]:
    """The hover's citations: path, first and last line, and the lines shown."""
    out = []
    for m in _LINK.finditer(markdown):
        start = int(m.group(2))
        out.append({"path": m.group(1), "start": start, "end": int(m.group(3) or start), "shown": m.group(5)})
    return out


def judge(symbol: dict, cited: list[dict], root: Path, texts: dict) -> list[dict]:
    word = whole_word(symbol["name"])
    for c in cited:
        if c["path"] not in texts:
            texts[c["path"]] = (root / c["path"]).read_text(encoding="utf-8", errors="replace").split("\n")
        lines = texts[c["path"]][c["start"] - 1:c["end"]]
        c["contains"] = bool(word.search("\n".join(lines)))
        c["shown_contains"] = bool(word.search(c.pop("shown")))
        c["definition"] = any(p == c["path"] and c["start"] <= l <= c["end"] for p, l in symbol["definitions"])
        c["own"] = c["path"] == symbol["path"] and c["start"] <= symbol["line"] + 1 <= c["end"]
    return cited


async def run_workspace(name: str, language: str, folders: list[str], work: Path, n: int) -> dict:
    root = work / name
    if language == "python":
        copy_packages(folders, root, blank_docstrings=False)
        defs, occurrences = python_symbols(root)
    else:
        copy_js(folders, language, root)
        defs, occurrences = js_symbols(root, language)
    symbols = sample(defs, occurrences, n, random.Random(f"{SEED}-{name}"))
    client = await start(root, work / f"cache-{name}")
    try:
        started = time.perf_counter()
        info = await wait_indexed(client)
        index_s = time.perf_counter() - started
        opened: set[str] = set()
        texts: dict = {}
        for s in symbols:
            uri = (root / s["path"]).as_uri()
            if uri not in opened:
                client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
                    uri=uri, language_id=language, version=1, text=(root / s["path"]).read_text(encoding="utf-8"))))
                opened.add(uri)
            answer = await client.text_document_hover_async(types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri), position=types.Position(s["line"], s["column"])))
            markdown = answer.contents.value if answer is not None else ""
            s["citations"] = judge(s, citations(markdown, root), root, texts)
            s["query_line"] = texts.setdefault(s["path"], (root / s["path"]).read_text(
                encoding="utf-8", errors="replace").split("\n"))[s["line"]].strip()[:200]
    finally:
        await client.shutdown_session()
        await client.stop()
    return {"language": language, "folders": folders, "chunks": info.get("chunks"), "index_s": round(index_s, 1),
            "defined_names": len(defs), "symbols": symbols, **score(symbols)}


def score(symbols: list[dict]) -> dict:
    cited = [c for s in symbols for c in s["citations"]]
    others = [c for c in cited if not c["own"]]
    answered = [s for s in symbols if s["citations"]]

    def share(items, key):
        return round(sum(1 for c in items if c[key]) / len(items), 4) if items else None

    return {"hovers": len(symbols), "answered": len(answered), "citations": len(cited),
            "precision": share(cited, "contains"), "precision_shown_lines": share(cited, "shown_contains"),
            "precision_without_own_chunk": share(others, "contains"),
            "definition_cited": round(sum(1 for s in answered if any(c["definition"] for c in s["citations"]))
                                      / len(answered), 4) if answered else None,
            "all_precise": round(sum(1 for s in answered if all(c["contains"] for c in s["citations"]))
                                 / len(answered), 4) if answered else None}


def markdown_report(result: dict) -> str:
    lines = [f"# Hover citation precision, {result['split']} workspaces (fast path, model off; real server over stdio)",
             "",
             f"Load: {result['load']}. Target: precision >= 0.95.", "",
             "| workspace | language | chunks | hovers | citations | precision | on the shown lines | without the "
             "hovered chunk | definition cited | every citation precise |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = list(result["workspaces"].items()) + [("all", result["all"])]
    for name, w in rows:
        lines.append(f"| {name} | {w.get('language', '')} | {w.get('chunks', '')} | {w['hovers']} | {w['citations']} | "
                     f"{w['precision']} | {w['precision_shown_lines']} | {w['precision_without_own_chunk']} | "
                     f"{w['definition_cited']} | {w['all_precise']} |")
    misses = [(n, s, c) for n, w in result["workspaces"].items() for s in w["symbols"] for c in s["citations"]
              if not c["contains"]]
    lines += ["", f"Imprecise citations ({len(misses)}), first 40:", ""]
    lines += [f"- {n}: `{s['name']}` at {s['path']}:{s['line'] + 1} (`{s['query_line'][:80]}`) -> "
              f"{c['path']}:{c['start']}-{c['end']}" for n, s, c in misses[:40]]
    return "\n".join(lines) + "\n"


async def main_async(args) -> dict:
    sets = HELDOUT if args.split == "heldout" else WORKSPACES
    chosen = args.workspaces.split(",") if args.workspaces else list(sets)
    result = {"split": args.split, "per_workspace": args.per_workspace, "seed": SEED, "workspaces": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            language, folders = sets[name]
            w = await run_workspace(name, language, folders, Path(tmp), args.per_workspace)
            result["workspaces"][name] = w
            print(name, {k: v for k, v in w.items() if k != "symbols"}, flush=True)
    result["all"] = score([s for w in result["workspaces"].values() for s in w["symbols"]])
    result["load"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="dev", choices=("dev", "heldout"))
    ap.add_argument("--per-workspace", type=int, default=PER_WORKSPACE)
    ap.add_argument("--workspaces", default="", help="comma-separated (default: all)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    result = asyncio.run(main_async(args))
    name = "hover_citations" + ("-heldout" if args.split == "heldout" else "") + (f"-{args.tag}" if args.tag else "")
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=1))
    (OUT / f"{name}.md").write_text(markdown_report(result))
    print(markdown_report(result))


if __name__ == "__main__":
    main()
