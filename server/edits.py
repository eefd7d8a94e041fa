"""Model output -> reviewable WorkspaceEdits (change annotations with needsConfirmation)."""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types

from .convert import path_to_uri
from .safety import check_target

_FENCE = re.compile(r"```[\w+-]*\n(.*?)(?:```|\Z)", re.DOTALL)
ANNOTATION = "engram-ls"


def extract_code(text: str) -> str:
    """The first fenced code block of a model answer, or the whole answer."""
    m = _FENCE.search(text)
    code = m.group(1) if m else text
    return code.strip("\n")


class EditBuilder:
    """Collects replacements and file creations, each checked against the workspace roots."""

    def __init__(self, roots: list[Path], label: str):
        self.roots = roots
        self.label = label
        self.changes: list = []
        self.files: list[str] = []

    def replace_lines(self, uri: str, start_line: int, end_line: int, new_text: str, version: int | None = None
                      ) -> None:
        """Replaces whole lines start_line..end_line (0-based, inclusive) with ``new_text``."""
        check_target(self.roots, uri)
        rng = types.Range(types.Position(start_line, 0), types.Position(end_line + 1, 0))
        self.replace(uri, rng, new_text.rstrip("\n") + "\n", version)

    def replace(self, uri: str, rng: types.Range, new_text: str, version: int | None = None) -> None:
        check_target(self.roots, uri)
        self.changes.append(types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
            edits=[types.AnnotatedTextEdit(range=rng, new_text=new_text, annotation_id=ANNOTATION)]))
        if uri not in self.files:
            self.files.append(uri)

    def create(self, path: Path, text: str) -> None:
        check_target(self.roots, path)
        uri = path_to_uri(path)
        self.changes.append(types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=True),
                                             annotation_id=ANNOTATION))
        self.changes.append(types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None),
            edits=[types.AnnotatedTextEdit(range=types.Range(types.Position(0, 0), types.Position(0, 0)),
                                           new_text=text, annotation_id=ANNOTATION)]))
        self.files.append(uri)

    def build(self) -> types.WorkspaceEdit:
        return types.WorkspaceEdit(document_changes=self.changes, change_annotations={
            ANNOTATION: types.ChangeAnnotation(label=self.label, needs_confirmation=True,
                                               description="proposed by a local model; review before applying")})
