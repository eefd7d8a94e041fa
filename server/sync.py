"""Document sync: the editor's text flows into the engrams (incremental re-encoding of the touched chunks)."""

from __future__ import annotations

import logging

from lsprotocol import types

from .app import EngramServer

log = logging.getLogger("engram_ls.server")


def register(server: EngramServer) -> None:
    versions: dict[str, int] = {}

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: EngramServer, params: types.DidOpenTextDocumentParams) -> None:
        versions[params.text_document.uri] = params.text_document.version
        ls.roots.document_changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: EngramServer, params: types.DidChangeTextDocumentParams) -> None:
        uri, version = params.text_document.uri, params.text_document.version
        if uri not in versions:
            log.warning("didChange for %s, which was never opened", uri)
        elif version is not None and version <= versions[uri]:
            log.warning("didChange for %s went from version %s to %s (out of order)", uri, versions[uri], version)
        versions[uri] = max(version or 0, versions.get(uri, 0))
        ls.roots.document_changed(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: EngramServer, params: types.DidSaveTextDocumentParams) -> None:
        engram, _ = ls.roots.locate(params.text_document.uri)
        if engram is not None:
            ls.roots.save_later(engram)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: EngramServer, params: types.DidCloseTextDocumentParams) -> None:
        versions.pop(params.text_document.uri, None)
        completer = getattr(ls, "completer", None)
        if completer is not None:
            completer.forget(params.text_document.uri)
        engram, rel = ls.roots.locate(params.text_document.uri)
        if engram is not None:
            ls.roots.submit(engram.close_document, rel)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched(ls: EngramServer, params: types.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            if change.uri in versions:
                continue  # open in the editor: its text wins over the disk
            engram, rel = ls.roots.locate(change.uri)
            if engram is None:
                continue
            if change.type == types.FileChangeType.Deleted:
                ls.roots.submit(engram.remove_document, rel)
            else:
                ls.roots.submit(engram.refresh_file, rel)
