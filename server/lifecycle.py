"""initialize / initialized / configuration / workspace folders / shutdown."""

from __future__ import annotations

import logging
from pathlib import Path

from lsprotocol import types

from .app import EngramServer
from .convert import uri_to_path

log = logging.getLogger("engram_ls.server")


def _folder_paths(params: types.InitializeParams) -> list[Path]:
    folders = params.workspace_folders or []
    paths = [uri_to_path(f.uri) for f in folders]
    if not paths and params.root_uri:
        paths = [uri_to_path(params.root_uri)]
    elif not paths and params.root_path:
        paths = [Path(params.root_path)]
    return [p for p in paths if p is not None]


async def pull_configuration(ls: EngramServer) -> None:
    """Asks the client for the ``engram`` section (workspace/configuration) and applies it when it has one."""
    caps = ls.client_capabilities.workspace
    if not (caps and caps.configuration):
        return
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="engram")]))
    except Exception as e:
        log.info("workspace/configuration failed: %s", e)
        return
    if result and isinstance(result[0], dict) and result[0]:
        ls.apply_settings(result[0])


def register(server: EngramServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: EngramServer, params: types.InitializeParams) -> None:
        ls.apply_settings(params.initialization_options)
        for enable in ls.on_initialize:
            enable(ls)
        folders = _folder_paths(params)
        ls.roots.folders_given = bool(folders)
        ls.roots.set_roots(folders)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: EngramServer, params: types.InitializedParams) -> None:
        await pull_configuration(ls)
        caps = ls.client_capabilities.workspace
        if caps and caps.did_change_watched_files and caps.did_change_watched_files.dynamic_registration:
            try:
                await ls.client_register_capability_async(types.RegistrationParams(registrations=[
                    types.Registration(id="engram-watch", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                       register_options=types.DidChangeWatchedFilesRegistrationOptions(
                                           watchers=[types.FileSystemWatcher(glob_pattern="**/*")]))]))
            except Exception as e:
                log.info("file watching not registered: %s", e)
        ls.roots.index_all()
        ls.models.start(ls.config.inference)  # loads and warms the workers while the user reads the code

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: EngramServer, params: types.DidChangeConfigurationParams) -> None:
        old_index = ls.config.index
        settings = params.settings
        if isinstance(settings, dict) and isinstance(settings.get("engram"), dict):
            ls.apply_settings(settings["engram"])
        else:
            await pull_configuration(ls)
        if ls.config.index != old_index:
            for root in list(ls.roots.engrams):
                ls.roots.remove(root)
                ls.roots.add(root)
            ls.roots.index_all()

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_folders(ls: EngramServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        for folder in params.event.removed:
            path = uri_to_path(folder.uri)
            if path is not None:
                ls.roots.remove(path)
        for folder in params.event.added:
            path = uri_to_path(folder.uri)
            if path is not None:
                ls.roots.folders_given = True
                ls.roots.add(path)
        ls.roots.index_all()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: EngramServer, params: None) -> None:
        await ls.close()
