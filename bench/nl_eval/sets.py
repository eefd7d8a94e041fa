"""Dev and held-out retrieval sets, NL -> code and code -> code, in Python, JavaScript and TypeScript.

Each set is real third-party code installed on the machine (site-packages; the VS Code client's node_modules),
copied into a fresh workspace with every docstring / JSDoc comment blanked (line numbers kept), so a function
cannot be found through its own documentation. A target is a documented function:

- NL -> code: the first sentence of its documentation is the query;
- code -> code: a perturbed copy (locals and parameters renamed, a quarter of the body lines dropped) is the query.

A hit is a retrieved chunk of the right file that contains the function's first line. The held-out split uses
other packages, chosen before any tuning, and is run once at the end.
"""

from __future__ import annotations

import json
import os
import random
import re
import sysconfig
from pathlib import Path

from bench.retrieval_bench import copy_packages, first_sentence, perturb

SITE = Path(sysconfig.get_paths()["purelib"])
# The JS/TS sets' packages: ENGRAM_BENCH_NODE_MODULES (an ``npm install`` of the packages below in a folder of its
# own), else the VS Code client's node_modules.
NODE = Path(os.environ.get("ENGRAM_BENCH_NODE_MODULES") or
            Path(__file__).resolve().parents[2] / "clients" / "vscode" / "node_modules")

# split -> language -> package folders (site-packages names for Python, node_modules-relative folders for JS/TS)
SETS = {
    "dev": {
        "python": ["click", "rich", "markdown_it", "pyparsing", "diskcache", "jinja2", "pathspec", "pygls"],
        "javascript": ["eslint/lib", "semver", "js-yaml/lib", "commander/lib", "markdown-it/lib", "minimatch",
                       "ajv/dist", "fast-glob/out"],
        "typescript": ["@azure/msal-common/src", "ajv/lib"],
    },
    "heldout": {
        "python": ["parso", "git", "dateutil", "stevedore", "sortedcontainers", "platformdirs", "yarl", "attr",
                   "cattrs"],
        "javascript": ["lodash", "undici/lib", "htmlparser2/lib", "parse5/dist", "table/dist", "cheerio/dist"],
        "typescript": ["@azure/msal-node/src", "cheerio/src", "@azure/msal-browser/src"],
    },
}
SUFFIX = {"javascript": (".js", ".cjs", ".mjs"), "typescript": (".ts",)}
N_NL = 200
N_CODE = 120
SEED = 12
MAX_FILE_BYTES = 400_000

_JS_FUNCTIONS = ("function_declaration", "generator_function_declaration", "method_definition")
_JS_VALUES = ("arrow_function", "function_expression", "function")
_TAG = re.compile(r"^\s*@")


def _parser(language: str):
    import tree_sitter as ts

    if language == "javascript":
        import tree_sitter_javascript as mod

        return ts.Parser(ts.Language(mod.language()))
    import tree_sitter_typescript as mod

    return ts.Parser(ts.Language(mod.language_typescript()))


def jsdoc_text(comment: str) -> str:
    """The prose of a ``/** ... */`` comment, up to its first ``@tag``."""
    body = comment[3:-2] if comment.endswith("*/") else comment[3:]
    out = []
    for line in body.split("\n"):
        line = line.strip().lstrip("*").strip()
        if _TAG.match(line):
            break
        out.append(line)
    return "\n".join(out).strip()


def _documented(root, language: str):
    """(function node, its /** */ comment node) pairs: declarations, methods, and functions bound by const/let/var
    or an assignment, with the JSDoc comment right above the statement."""
    stack = [root]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        fn = None
        if node.type in _JS_FUNCTIONS:
            fn = node
        elif node.type == "variable_declarator" and node.child_by_field_name("value") is not None and \
                node.child_by_field_name("value").type in _JS_VALUES:
            fn = node.parent
        elif node.type == "assignment_expression" and node.child_by_field_name("right") is not None and \
                node.child_by_field_name("right").type in _JS_VALUES and node.parent.type == "expression_statement":
            fn = node.parent
        if fn is None:
            continue
        anchor = fn.parent if fn.parent is not None and fn.parent.type == "export_statement" else fn
        prev = anchor.prev_sibling
        if prev is not None and prev.type == "comment" and prev.text.startswith(b"/**") and \
                prev.end_point[0] >= anchor.start_point[0] - 1:
            yield anchor, fn, prev


def _js_perturb(source: str, rng: random.Random) -> str:
    """Renames declared locals and simple parameters, drops a quarter of the body lines (never the first)."""
    names = set(re.findall(r"\b(?:let|const|var)\s+([A-Za-z_$][\w$]*)", source))
    head = source.split("\n", 1)[0]
    m = re.search(r"\(([^()]*)\)", head)
    if m:
        names |= {p.strip().split("=")[0].split(":")[0].strip() for p in m.group(1).split(",")}
    names = {n for n in names if re.fullmatch(r"[A-Za-z_$][\w$]*", n) and n not in ("this", "self")}
    out = source
    for i, name in enumerate(sorted(names)):
        out = re.sub(rf"(?<![\w$.]){re.escape(name)}(?![\w$])", f"v{i}", out)
    lines = out.split("\n")
    drop = set(rng.sample(range(1, len(lines)), k=(len(lines) - 1) // 4)) if len(lines) >= 5 else set()
    return "\n".join(l for i, l in enumerate(lines) if i not in drop)


def copy_js(folders: list[str], language: str, dest: Path, root: Path = NODE) -> list[dict]:
    """Copies the folders' JS or TS files (under ``root``; docs blanked); returns every function found (with its doc
    or None)."""
    parser = _parser(language)
    functions = []
    for folder in folders:
        src = root / folder
        if not src.exists():
            continue
        for f in sorted(src.rglob("*")):
            if not f.name.endswith(SUFFIX[language]) or f.name.endswith(".d.ts") or ".min." in f.name or \
                    "node_modules" in f.relative_to(src).parts or not f.is_file() or \
                    f.stat().st_size > MAX_FILE_BYTES:
                continue
            rel = (Path(folder.replace("@", "")) / f.relative_to(src)).as_posix()
            text = f.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
            lines = text.split("\n")
            tree = parser.parse(text.encode("utf-8", "surrogatepass"))
            for anchor, fn, comment in _documented(tree.root_node, language):
                start, end = anchor.start_point[0], anchor.end_point[0]
                doc = jsdoc_text(comment.text.decode("utf-8", "replace"))
                name_node = fn.child_by_field_name("name")
                functions.append({"path": rel, "line": start + 1, "end": end + 1, "doc": doc or None,
                                  "name": name_node.text.decode() if name_node is not None else "",
                                  "source": "\n".join(lines[start:end + 1])})
                for n in range(comment.start_point[0], comment.end_point[0] + 1):
                    lines[n] = ""
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines), encoding="utf-8")
    return functions


def versions(split: str, language: str) -> dict[str, str]:
    """The installed version of each package of a set, for the results file."""
    from importlib import metadata

    out = {}
    for folder in SETS[split][language]:
        if language == "python":
            dists = metadata.packages_distributions().get(folder, [folder])
            try:
                out[dists[0]] = metadata.version(dists[0])
            except metadata.PackageNotFoundError:
                out[folder] = "missing"
        else:
            name = "/".join(folder.split("/")[:2]) if folder.startswith("@") else folder.split("/")[0]
            manifest = NODE / name / "package.json"
            out[name] = json.loads(manifest.read_text())["version"] if manifest.exists() else "missing"
    return out


def build(split: str, language: str, dest: Path) -> dict:
    """Writes the workspace for one split and language; returns its queries: ``{"nl": [...], "code": [...]}``,
    each item a target dict with its ``query``."""
    folders = SETS[split][language]
    if language == "python":
        functions = copy_packages(folders, dest, blank_docstrings=True)
    else:
        functions = copy_js(folders, language, dest)
    rng = random.Random(f"{SEED}-{split}-{language}")
    with_doc = [f for f in functions if f["doc"] and len(first_sentence(f["doc"]).split()) >= 4]
    nl = rng.sample(with_doc, min(N_NL, len(with_doc)))
    for f in nl:
        f["query"] = first_sentence(f["doc"])
    pool = [f for f in functions if 6 <= f["end"] - f["line"] + 1 <= 60]
    code = []
    for f in rng.sample(pool, min(N_CODE, len(pool))):
        q = perturb(f["source"], rng) if language == "python" else _js_perturb(f["source"], rng)
        if q:
            code.append(dict(f, query=q))
    return {"nl": nl, "code": code, "folders": folders, "functions": len(functions),
            "versions": versions(split, language)}


def run_dev(run_language) -> dict:
    """``run_language(language, tmp)`` for each dev language (or ``--languages a,b``) in a temporary folder:
    ``{"split": "dev", "languages": {language: result}, "load": uptime}`` — the shared main of the variant benches."""
    import argparse
    import subprocess
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--languages", default="")
    args = ap.parse_args()
    languages = args.languages.split(",") if args.languages else list(SETS["dev"])
    result = {"split": "dev", "languages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for language in languages:
            result["languages"][language] = run_language(language, Path(tmp))
    result["load"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return result
