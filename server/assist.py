"""What the model does for a feature: explain, rewrite, plan and test code from retrieved context.

Handlers parse and convert; these helpers fetch the context, call the model and build the answer or the edit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

from lsprotocol import types

from engram_ls.inference import InferenceError
from engram_ls.retrieval.store import cache_root

from . import code_check, grounding, sentences
from .app import EngramServer
from .context import clean, refuse_private, related, snippets
from .convert import citation, fence, hit_json, language_of, link, path_to_uri, to_json
from .edits import EditBuilder, extract_code
from .hover import prose
from .ranges import selection
from .safety import UnsafeEdit

log = logging.getLogger("engram_ls.server")
_answers = itertools.count(1)
DEFAULT_INSTRUCTION = "Refactor for readability without changing behaviour."


class NoValidEdit(InferenceError):
    """The model's code failed the parser (or called itself) twice: nothing is offered."""

    def __init__(self, problem):
        super().__init__(f"no valid edit was produced: the model's code was rejected twice ({problem})",
                         "invalid_code")
        self.problem = problem


async def show_answer(ls: EngramServer, title: str, markdown: str) -> str:
    """Writes an answer to a Markdown file under the cache dir and asks the client to show it; returns its URI."""
    folder = cache_root() / "answers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{next(_answers)}.md"
    path.write_text(f"# {title}\n\n{markdown}\n", encoding="utf-8")
    uri = path_to_uri(path)
    window = ls.client_capabilities.window
    if window and window.show_document and window.show_document.support:
        try:
            await asyncio.wait_for(ls.window_show_document_async(
                types.ShowDocumentParams(uri=uri, take_focus=True)), 10)
        except Exception as e:
            log.info("showDocument failed: %s", e)
    return uri


async def explain(ls: EngramServer, question: str, hits, title: str) -> dict:
    """The research model's answer with its sources and the retrieved code; the code alone when no model runs."""
    try:
        answer = await (await ls.inference()).ask(question, snippets(hits), role="research", max_tokens=384)
        text, cut = sentences.finish(answer.text, answer.finish, answer.usage.get("completion_tokens", 0))
        checked = grounding.check_citations(text, answer.cited)
        body = prose(checked.text) + (f"\n\n*{cut}*" if cut else "")
        if checked.invented:
            body += f"\n\n*Removed citations of code the model was not shown: {', '.join(checked.invented)}.*"
        cited_keys = {(s.path, s.start_line) for s in answer.cited}
    except InferenceError as e:
        body = f"*The model is unavailable ({e}); here is the most relevant code instead.*"
        cited_keys = set()
    cited_hits = [(r, h) for r, h in hits if (h.path, h.start_line) in cited_keys] or list(hits)
    sources = "\n".join(f"- {link(r, h.path, h.start_line, h.end_line)}" for r, h in cited_hits)
    code = "\n\n".join(f"{link(r, h.path, h.start_line, h.end_line)}\n{fence(h.text, language_of(h.path), 20)}"
                       for r, h in hits)
    markdown = f"{body}\n\n## Sources\n{sources}\n\n## Retrieved code\n{code}"
    uri = await show_answer(ls, title, markdown)
    return {"markdown": markdown, "uri": uri, "citations": [citation(r, h) for r, h in cited_hits]}


async def explain_workspace(ls: EngramServer, question: str) -> dict:
    """Explains from the workspace only when retrieval found code that supports the question; otherwise says so,
    with the nearest hits, and no model runs."""
    hits = await related(ls, question, 6)
    found = grounding.assess(question, hits, key=lambda pair: pair[1])
    if found.grounded:
        return await explain(ls, question, hits, question)
    nearest = "\n".join(f"- {link(r, h.path, h.start_line, h.end_line)}" for r, h in found.nearest)
    markdown = found.message() + (f"\n\n## Nearest hits (weak matches)\n{nearest}" if nearest else "")
    uri = await show_answer(ls, question, markdown)
    return {"markdown": markdown, "uri": uri, "citations": [], "grounded": False,
            "nearest": [hit_json(r, h) for r, h in found.nearest]}


async def explain_selection(ls: EngramServer, uri: str, rng: types.Range) -> dict:
    refuse_private(uri)
    text, first, last = selection(ls.document(uri), rng)
    _, rel = ls.roots.locate(uri)
    hits = await related(ls, text, 4, uri, exclude_lines=(first + 1, last + 1))
    name = rel or uri
    question = f"Explain what this code from {name} (lines {first + 1}-{last + 1}) does:\n```\n{clean(text)}\n```"
    return await explain(ls, question, hits, f"{name}:{first + 1}-{last + 1}")


async def similar(ls: EngramServer, uri: str, rng: types.Range) -> dict:
    text, first, last = selection(ls.document(uri), rng)
    hits = await related(ls, text, 8, uri, exclude_lines=(first + 1, last + 1))
    markdown = "\n\n".join(f"{link(r, h.path, h.start_line, h.end_line)} (score {h.score:.3f})\n"
                           f"{fence(h.text, language_of(h.path), 12)}" for r, h in hits) or "No similar code."
    return {"results": [hit_json(r, h) for r, h in hits], "uri": await show_answer(ls, "Similar code", markdown)}


async def rewrite(ls: EngramServer, code: str, instruction: str, hits, path: str,
                  document: str | None = None, lines: tuple[int, int] | None = None) -> str:
    """The coding model's rewrite of ``code``: the first fenced block of its answer, re-indented like ``code``.
    It must parse (spliced into ``document`` at ``lines``, 0-based, when given) and must not make a function call
    itself; otherwise the model is asked once more with the problem, then ``NoValidEdit`` is raised."""
    lang = language_of(path)
    language = code_check.language_of(path)
    inference = await ls.inference()
    prompt = (f"Rewrite the following code from {path} so that: {instruction}\n"
              f"Return only the complete rewritten code in one fenced block.\n```{lang}\n{clean(code)}\n```")

    async def generate(feedback: str) -> str:
        answer = await inference.ask(f"{prompt}\n{feedback}" if feedback else prompt, snippets(hits), role="coding",
                                     max_tokens=512)
        return code_check.match_indent(code, extract_code(answer.text))

    def check(candidate: str):
        problem = (code_check.edit_problem(document, lines[0], lines[1], candidate, language)
                   if document is not None and lines is not None else code_check.parse_problem(candidate, language))
        return problem or code_check.recursion_problem(code, candidate, language)

    result, problem, _ = await code_check.first_valid(generate, check)
    if problem is not None:
        raise NoValidEdit(problem)
    return result


async def rewrite_selection(ls: EngramServer, uri: str, rng: types.Range, instruction: str,
                            label: str | None = None) -> EditBuilder:
    """An edit replacing the selected lines with the model's rewrite."""
    refuse_private(uri)
    doc = ls.document(uri)
    text, first, last = selection(doc, rng)
    hits = await related(ls, text, 3, uri, exclude_lines=(first + 1, last + 1))
    _, rel = ls.roots.locate(uri)
    code = await rewrite(ls, text, instruction, hits, rel or uri, doc.source, (first, last))
    builder = EditBuilder(list(ls.roots.engrams), label or f"engram-ls: {instruction}")
    builder.replace_lines(uri, first, last, code, doc.version)
    return builder


async def add_docstring(ls: EngramServer, uri: str, rng: types.Range) -> EditBuilder:
    return await rewrite_selection(ls, uri, rng, "add a concise docstring (or doc comment) that explains why the "
                                                 "code exists and what it returns; change nothing else",
                                   "engram-ls: add docstring")


def test_path(root: Path, rel: str) -> Path:
    p = Path(rel)
    name = f"test_{p.stem}{p.suffix or '.py'}" if not p.stem.startswith("test_") else f"{p.stem}_more{p.suffix}"
    return root / "tests" / name


async def generate_tests(ls: EngramServer, uri: str, rng: types.Range) -> EditBuilder:
    """A new test file under the root's tests/ folder for the selected code."""
    refuse_private(uri)
    text, first, last = selection(ls.document(uri), rng)
    engram, rel = ls.roots.locate(uri)
    if engram is None:
        raise UnsafeEdit("the document is outside the workspace roots; there is nowhere to put tests")
    hits = await related(ls, text, 3, uri, exclude_lines=(first + 1, last + 1))
    lang = language_of(rel)
    module = Path(rel).with_suffix("").as_posix().replace("/", ".")
    inference = await ls.inference()
    prompt = (f"Write unit tests (pytest style for Python) for this code from {rel} (module {module}). "
              f"Return only the test file in one fenced block.\n```{lang}\n{clean(text)}\n```")

    async def generate(feedback: str) -> str:
        answer = await inference.ask(f"{prompt}\n{feedback}" if feedback else prompt, snippets(hits), role="coding",
                                     max_tokens=512)
        return extract_code(answer.text)

    target = test_path(engram.root, rel)
    code, problem, _ = await code_check.first_valid(
        generate, lambda c: code_check.parse_problem(c, code_check.language_of(target.name)))
    if problem is not None:
        raise NoValidEdit(problem)
    builder = EditBuilder(list(ls.roots.engrams), "engram-ls: generate tests")
    builder.create(target, code + "\n")
    return builder


async def refactor_workspace(ls: EngramServer, instruction: str) -> tuple[EditBuilder, str]:
    """A plan from the research model, then rewrites of up to three retrieved chunks (one per file)."""
    hits = await related(ls, instruction, 4)
    inference = await ls.inference()
    planned = await inference.ask(f"Plan this change to the code base: {instruction}\nSay briefly which of the shown "
                                  f"code must change and how.", snippets(hits), role="research", max_tokens=160)
    plan, cut = sentences.finish(planned.text, planned.finish, planned.usage.get("completion_tokens", 0))
    plan += f" {cut}" if cut else ""
    builder = EditBuilder(list(ls.roots.engrams), f"engram-ls: {instruction}")
    targets: list = []
    for root, hit in hits:
        if len(targets) < 3 and all(t[1].path != hit.path for t in targets):
            targets.append((root, hit))
    refused: list[str] = []
    for root, hit in targets:
        path = root / hit.path
        uri = path_to_uri(path)
        open_doc = ls.workspace.text_documents.get(uri)
        current = open_doc.source if open_doc else path.read_text(encoding="utf-8", errors="replace")
        original = "\n".join(current.splitlines()[hit.start_line - 1:hit.end_line])
        if original != hit.text:
            log.info("skipping %s:%s: it holds redacted secrets or changed", hit.path, hit.start_line)
            continue
        try:
            code = await rewrite(ls, original, f"{instruction}\nPlan: {plan}", [t for t in hits if t[1] is not hit],
                                 hit.path, current, (hit.start_line - 1, hit.end_line - 1))
        except NoValidEdit as e:
            log.warning("no edit for %s:%s: %s", hit.path, hit.start_line, e)
            refused.append(f"{hit.path}:{hit.start_line}-{hit.end_line} ({e.problem})")
            continue
        try:
            builder.replace_lines(uri, hit.start_line - 1, hit.end_line - 1, code,
                                  open_doc.version if open_doc else None)
        except UnsafeEdit as e:
            log.warning("refused edit: %s", e)
    if refused:
        plan += "\n\nNo valid edit was produced for " + "; ".join(refused) + "."
        if not builder.changes:
            raise NoValidEdit("; ".join(refused))
    return builder, plan


async def propose(ls: EngramServer, builder: EditBuilder, apply: bool, plan: str = "") -> dict:
    """Sends the edit through workspace/applyEdit (the client asks the user to confirm) when ``apply``."""
    edit = builder.build()
    applied = False
    if apply and builder.changes:
        try:
            result = await asyncio.wait_for(ls.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(edit=edit, label=builder.label)), 600)
            applied = bool(result and result.applied)
        except Exception as e:
            log.info("workspace/applyEdit failed: %s", e)
    return {"edit": to_json(edit), "applied": applied, "files": builder.files, "plan": plan}

