import { test } from "node:test";
import assert from "node:assert/strict";
import { serverCommand, toServerSettings } from "../../src/settings";

function getter(values: Record<string, unknown>) {
  return (key: string) => values[key];
}

test("defaults give the server's defaults", () => {
  const s = toServerSettings(getter({}));
  assert.equal(s.backend.kind, "llama");
  assert.equal(s.backend.url, null);
  assert.deepEqual(s.models, { coding: {}, research: {} });
  assert.equal(s.completion.debounceMs, 150);
  assert.equal(s.logLevel, "info");
});

test("VS Code keys map to the server's camelCase settings", () => {
  const s = toServerSettings(getter({
    "models.coding.path": "/m/coder.gguf", "models.coding.poolSize": 2, "models.research.threads": 1,
    "backend.kind": "openai", "backend.url": "http://127.0.0.1:8080", "index.ignore": ["*.log"],
    "completion.maxTokens": 32, "hover.useModel": false, "logLevel": "debug",
  }));
  assert.deepEqual(s.models.coding, { path: "/m/coder.gguf", poolSize: 2 });
  assert.deepEqual(s.models.research, { threads: 1 });
  assert.deepEqual(s.backend, { kind: "openai", url: "http://127.0.0.1:8080" });
  assert.deepEqual(s.index.ignore, ["*.log"]);
  assert.equal(s.completion.maxTokens, 32);
  assert.equal(s.hover.useModel, false);
  assert.equal(s.logLevel, "debug");
});

test("empty model paths are left to the server's default", () => {
  const s = toServerSettings(getter({ "models.coding.path": "", "models.research.path": null }));
  assert.deepEqual(s.models, { coding: {}, research: {} });
});

test("server command: configured path, then PATH, then python -m", () => {
  assert.deepEqual(serverCommand("/opt/engram-ls", "", true), { command: "/opt/engram-ls", args: ["serve"] });
  assert.deepEqual(serverCommand("", "", true), { command: "engram-ls", args: ["serve"] });
  assert.deepEqual(serverCommand("", "/venv/bin/python", true), {
    command: "/venv/bin/python", args: ["-m", "engram_ls.server.cli", "serve"],
  });
  assert.deepEqual(serverCommand("", "", false).args, ["-m", "engram_ls.server.cli", "serve"]);
});
