"""Retrieved context for a request: snippets near the cursor or for a question, never from secret files."""

from __future__ import annotations

from pathlib import Path

from engram_ls.inference import Snippet
from engram_ls.retrieval import Hit
from engram_ls.retrieval.secrets import redact
from engram_ls.retrieval.walk import is_secret_path

from .app import EngramServer
from .convert import uri_to_path
from .errors import BadRequest


def is_private(uri: str) -> bool:
    """A secret-bearing document (.env, keys, credentials): never sent to a model."""
    path = uri_to_path(uri)
    return path is not None and is_secret_path(path.name)


def refuse_private(uri: str) -> None:
    if is_private(uri):
        raise BadRequest("refusing to send a secret-bearing file to a model")


def to_snippet(root: Path, hit: Hit) -> Snippet:
    return Snippet(hit.path, hit.start_line, hit.end_line, hit.text, hit.priority)


def snippets(hits) -> list[Snippet]:
    return [to_snippet(r, h) for r, h in hits]


async def related(ls: EngramServer, query: str, k: int, uri: str | None = None,
                  exclude_lines: tuple[int, int] | None = None) -> list[tuple[Path, Hit]]:
    """Top-k hits for ``query``; hits overlapping ``exclude_lines`` (1-based) of ``uri`` itself are dropped, so
    the model is not shown the code it is completing."""
    if k <= 0 or not query.strip():
        return []
    engram, rel = ls.roots.locate(uri) if uri else (None, None)
    hits = await ls.roots.search(query, k + 2)
    out = []
    for root, hit in hits:
        if engram is not None and root == engram.root and hit.path == rel and exclude_lines and \
                hit.start_line <= exclude_lines[1] and hit.end_line >= exclude_lines[0]:
            continue
        out.append((root, hit))
    return out[:k]


def clean(text: str) -> str:
    """Text bound for a prompt, secrets redacted."""
    return redact(text)
