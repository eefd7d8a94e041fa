"""The typed configuration: parser unit tests and its three LSP entry points."""

from lsprotocol import types

from engram_ls.server.config import parse

from .conftest import command, indexed, search, start, stop


def test_defaults_with_nothing_set():
    config, warnings = parse(None)
    assert warnings == [] and config.inference.backend == "llama" and config.completion.enabled


def test_camel_case_nested_settings():
    config, warnings = parse({"models": {"coding": {"poolSize": 2, "threads": 1}}, "backend": {"kind": "stub"},
                              "index": {"ignore": ["*.log"], "maxFileBytes": 5000},
                              "completion": {"debounceMs": 10}, "logLevel": "debug"})
    assert warnings == []
    assert config.inference.coding.pool_size == 2 and config.inference.backend == "stub"
    assert config.index.ignore == ["*.log"] and config.index.max_file_bytes == 5000
    assert config.completion.debounce_ms == 10 and config.log_level == "debug"


def test_unknown_and_invalid_keys_warn_with_their_names():
    config, warnings = parse({"colour": "red", "models": {"coding": {"poolSize": "two"}, "art": {}},
                              "backend": {"kind": "quantum"}, "completion": {"debounceMs": -5}, "logLevel": 3})
    text = "\n".join(warnings)
    for key in ("colour", "models.coding.poolSize", "models.art", "backend", "completion.debounceMs", "logLevel"):
        assert key in text, key
    assert config.inference.coding.pool_size == 1 and config.inference.backend == "llama"
    assert config.completion.debounce_ms == 150


def test_the_completion_budget_is_bounded_and_the_cli_batch_uses_the_same_default():
    from engram_ls.server.cli import build_parser
    from engram_ls.server.config import CompletionSettings

    config, warnings = parse({"completion": {"contextTokens": 2048}})
    assert warnings == [] and config.completion.context_tokens == 2048
    config, warnings = parse({"completion": {"contextTokens": 100}})
    assert "completion.contextTokens" in "\n".join(warnings)
    assert config.completion.context_tokens == CompletionSettings().context_tokens
    batch = build_parser().parse_args(["complete", ".", "--requests-file", "r.jsonl"])
    assert batch.context_length == CompletionSettings().context_tokens  # reproduces inline completion's prompts
    assert batch.suffix_tokens == CompletionSettings().suffix_tokens
    config, warnings = parse({"completion": {"suffixTokens": 0}})
    assert warnings == [] and config.completion.suffix_tokens == 0
    config, warnings = parse({"completion": {"suffixTokens": -1}})
    assert "completion.suffixTokens" in "\n".join(warnings)
    assert config.completion.suffix_tokens == CompletionSettings().suffix_tokens


def test_non_object_settings():
    config, warnings = parse(["nope"])
    assert warnings and config.log_level == "info"


async def test_invalid_initialization_options_are_shown_not_fatal(workspace, tmp_path):
    client = await start(workspace, tmp_path / "cache", options={"backend": {"kind": "stub"}, "bogusKey": 1})
    try:
        await indexed(client)
        assert any("bogusKey" in m.message and m.type == types.MessageType.Warning for m in client.messages)
        assert (await search(client, "download a web page", 1))[0]["path"] == "net/http_client.py"
    finally:
        await stop(client)


async def test_workspace_configuration_and_did_change_configuration(workspace, tmp_path):
    client = await start(workspace, tmp_path / "cache")
    try:
        await indexed(client)
        client.set_configuration({"index": {"ignore": ["net/"]}, "backend": {"kind": "stub"}}, section="engram")
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await indexed(client)

        async def net_gone():
            return all(r["path"] != "net/http_client.py" for r in await search(client, "download a web page", 5))
        from .conftest import until
        await until(net_gone, what="the ignore setting to apply")
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={"engram": {"index": {"ignore": []}, "backend": {"kind": "stub"}}}))
        await indexed(client)

        async def net_back():
            hits = await search(client, "download a web page", 1)
            return hits and hits[0]["path"] == "net/http_client.py"
        await until(net_back, what="the index to come back")
        status = await command(client, "engram.status")
        assert status["models"]["backend"] == "stub"
    finally:
        await stop(client)


def test_an_empty_lua_table_is_an_empty_object():
    """vim.json.encode({}) is [], so Neovim's plain setup() sends []: no warning, the defaults."""
    config, warnings = parse([])
    assert warnings == [] and config.completion.enabled and config.log_level == "info"
    _, warnings = parse({"models": {"coding": {"gpuLayers": "all"}}, "hover": {"colour": 1}})
    assert any("models.coding.gpuLayers" in w for w in warnings) and any("hover.colour" in w for w in warnings)
