"""Mechanical checks of an explanation: facts stated, the right function named and cited, no invented names or
citations, no repetition. Pure functions over text, snippets and a question record from questions.json."""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import sys
from functools import lru_cache
from pathlib import Path

from engram_ls.server import grounding

HERE = Path(__file__).parent
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BACKTICKED = re.compile(r"`([^`\n]+)`")
# Outside backticks, a word is taken for a code name when it has an underscore, an inner capital or a call.
_CODE_WORD = re.compile(r"\b(?:[A-Za-z]\w*_\w*|[A-Z][a-z0-9]+[A-Z]\w*|[a-z]+[A-Z]\w*|\w+(?=\())")
_WORD = re.compile(r"[a-z0-9_]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
KNOWN = (set(dir(builtins)) | set(keyword.kwlist) | set(sys.stdlib_module_names)
         | {"self", "cls", "True", "False", "None", "args", "kwargs", "e", "i", "n", "s", "x", "py"})


@lru_cache(maxsize=None)
def definition_line(path: str, symbol: str) -> int:
    """The 1-based line where ``symbol`` (a function, method or class) is defined in the eval package."""
    tree = ast.parse((HERE / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == symbol:
            return node.lineno
    raise KeyError(f"{symbol} is not defined in {path}")


def facts_stated(answer: str, facts: list[list[str]]) -> int:
    """Facts (each a list of accepted phrasings) whose phrasing occurs in the answer, case-insensitively."""
    low = answer.lower()
    return sum(any(p.lower() in low for p in group) for group in facts)


def code_names(answer: str) -> set[str]:
    names = {m for span in _BACKTICKED.findall(answer) for m in _IDENT.findall(span)}
    prose = _BACKTICKED.sub(" ", answer)
    names |= {m for m in _CODE_WORD.findall(prose)}
    return {n for n in names if not n.isdigit()}


def invented_names(answer: str, snippets, question: str) -> list[str]:
    """Code names in the answer that neither the snippets nor the question nor Python itself contain."""
    known = set(KNOWN) | set(_IDENT.findall(question))
    for s in snippets:
        known |= set(_IDENT.findall(s.text)) | set(_IDENT.findall(s.path))
    return sorted(n for n in code_names(answer) if n not in known and n.lower() not in known)


def repeated_sentences(answer: str) -> int:
    """Sentences that occur more than once (after lower-casing and collapsing white space), counted per repeat."""
    seen, repeats = set(), 0
    for sentence in _SENTENCE.split(answer):
        key = " ".join(_WORD.findall(sentence.lower()))
        if len(key.split()) < 3:
            continue
        repeats += key in seen
        seen.add(key)
    return repeats


def repeated_ngram_share(answer: str, n: int = 4) -> float:
    """The share of word n-grams that already occurred earlier in the same answer (0: no repetition)."""
    words = _WORD.findall(answer.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    seen, repeats = set(), 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


def score(answer: str, question: dict, snippets) -> dict:
    line = definition_line(question["path"], question["symbol"])
    citations = grounding.check_citations(answer, snippets)
    cites_target = any(s.path == question["path"] and s.start_line <= line <= s.end_line for s in citations.valid)
    given_target = any(s.path == question["path"] and s.start_line <= line <= s.end_line for s in snippets)
    return {"facts": facts_stated(answer, question["facts"]), "facts_required": len(question["facts"]),
            "names_function": question["symbol"] in answer, "cites_target": cites_target,
            "target_retrieved": given_target, "invented_names": invented_names(answer, snippets, question["question"]),
            "invented_citations": citations.invented, "repeated_sentences": repeated_sentences(answer),
            "repeated_4gram_share": round(repeated_ngram_share(answer), 3)}
