// Protocol-level test: the same wire library as vscode-languageclient starts the real engram-ls and sends exactly
// the requests the extension's commands send (arguments built by the extension's own helpers).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import {
  createProtocolConnection,
  ProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-languageserver-protocol/node";
import { searchArgs, selectionArgs } from "../../src/render";
import { toServerSettings } from "../../src/settings";

const FILES: Record<string, string> = {
  "shop/pricing.py": "DISCOUNT_RATE = 0.1\n\n\ndef apply_discount(amount):\n    \"\"\"Takes ten percent off large orders.\"\"\"\n    if amount > 100:\n        return amount * (1 - DISCOUNT_RATE)\n    return amount\n",
  "shop/cart.py": "from shop.pricing import apply_discount\n\n\nclass Cart:\n    def total(self, subtotal):\n        return apply_discount(subtotal)\n",
  "net/http_client.py": "import socket\n\n\ndef fetch_url(url, timeout=5):\n    \"\"\"Download a web page over HTTP.\"\"\"\n    host = url.split('/')[2]\n    return socket.create_connection((host, 80), timeout)\n",
};

let server: ChildProcess;
let conn: ProtocolConnection;
let root: string;
const applied: unknown[] = [];

function uri(rel: string): string {
  return pathToFileURL(path.join(root, rel)).toString();
}

async function command<T>(name: string, arg?: object): Promise<T> {
  return conn.sendRequest("workspace/executeCommand", { command: name, arguments: arg ? [arg] : [] }) as Promise<T>;
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "engram-vscode-"));
  for (const [rel, text] of Object.entries(FILES)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  const exe = process.env.ENGRAM_LS ?? "engram-ls";
  // vscode-languageclient appends --stdio; so do we.
  server = spawn(exe, ["serve", "--stdio"], {
    env: { ...process.env, ENGRAM_LS_CACHE: fs.mkdtempSync(path.join(os.tmpdir(), "engram-cache-")) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  conn = createProtocolConnection(new StreamMessageReader(server.stdout!), new StreamMessageWriter(server.stdin!));
  const settings = { ...toServerSettings(() => undefined), backend: { kind: "stub", url: null } };
  settings.completion.debounceMs = 0;
  conn.onRequest("workspace/configuration", () => [settings]);
  conn.onRequest("window/workDoneProgress/create", () => null);
  conn.onRequest("client/registerCapability", () => null);
  conn.onRequest("window/showDocument", () => ({ success: true }));
  conn.onRequest("workspace/applyEdit", (params) => {
    applied.push(params);
    return { applied: true };
  });
  conn.onUnhandledNotification(() => undefined);
  conn.listen();
  const init = (await conn.sendRequest("initialize", {
    processId: process.pid,
    rootUri: pathToFileURL(root).toString(),
    workspaceFolders: [{ uri: pathToFileURL(root).toString(), name: "ws" }],
    capabilities: {
      workspace: { configuration: true, applyEdit: true, workspaceEdit: { documentChanges: true, changeAnnotationSupport: {} } },
      window: { workDoneProgress: true, showDocument: { support: true } },
      textDocument: { inlineCompletion: {}, hover: { contentFormat: ["markdown"] } },
    },
    initializationOptions: settings,
  })) as { capabilities: Record<string, unknown> };
  assert.ok(init.capabilities.inlineCompletionProvider, "inline completion is advertised");
  await conn.sendNotification("initialized", {});
  for (let i = 0; i < 600; i++) {
    const status = await command<{ index: Record<string, { indexing: boolean; files: number }> }>("engram.status");
    const roots = Object.values(status.index);
    if (roots.length && roots.every((r) => !r.indexing && r.files > 0)) {
      return;
    }
    await new Promise((r) => setTimeout(r, 50)); // polling a condition, with a bound
  }
  throw new Error("the server never finished indexing");
});

after(async () => {
  try {
    await conn.sendRequest("shutdown");
    await conn.sendNotification("exit");
  } finally {
    conn.dispose();
    server.kill();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("Engram: Search Similar Code", async () => {
  const result = await command<{ results: { path: string; uri: string; start_line: number }[] }>(
    "engram.search", searchArgs("download a web page"));
  assert.equal(result.results[0].path, "net/http_client.py");
  assert.equal(result.results[0].uri, uri("net/http_client.py"));
  assert.equal(result.results[0].start_line, 4);
});

test("Engram: Explain Workspace…", async () => {
  const answer = await command<{ markdown: string; uri: string; citations: { path: string }[] }>(
    "engram.explainWorkspace", { question: "How is the discount applied?" });
  assert.match(answer.markdown, /^stub_/);
  assert.match(answer.markdown, /## Sources/);
  assert.ok(answer.citations.some((c) => c.path === "shop/pricing.py"));
  assert.ok(answer.uri.startsWith("file://") && answer.uri.endsWith(".md"));
});

test("Engram: Explain Selection and Refactor Selection…", async () => {
  const text = fs.readFileSync(path.join(root, "shop/pricing.py"), "utf8");
  await conn.sendNotification("textDocument/didOpen", {
    textDocument: { uri: uri("shop/pricing.py"), languageId: "python", version: 1, text },
  });
  const range = { start: { line: 3, character: 0 }, end: { line: 7, character: 17 } };
  const answer = await command<{ citations: unknown[] }>("engram.explainSelection", selectionArgs(uri("shop/pricing.py"), range));
  assert.ok(answer.citations.length > 0);
  // Python edits are parsed before they are offered: the stub model's words are refused with a clear error ...
  await assert.rejects(
    command("engram.refactorSelection", selectionArgs(uri("shop/pricing.py"), range, "use a constant", true)),
    (e: { code: number; message: string }) => e.code === -32803 && /no valid edit was produced/.test(e.message));
  // ... and in a language engram-ls does not parse (Lua) the edit reaches the user for review.
  const lua = "local function greet(name)\n  return 'hi ' .. name\nend\n";
  fs.writeFileSync(path.join(root, "tool.lua"), lua);
  await conn.sendNotification("textDocument/didOpen", {
    textDocument: { uri: uri("tool.lua"), languageId: "lua", version: 1, text: lua },
  });
  const luaRange = { start: { line: 0, character: 0 }, end: { line: 2, character: 3 } };
  const result = await command<{ applied: boolean; files: string[] }>(
    "engram.refactorSelection", selectionArgs(uri("tool.lua"), luaRange, "use a constant", true));
  assert.equal(result.applied, true);
  const edit = (applied.at(-1) as { edit: { changeAnnotations: Record<string, { needsConfirmation: boolean }> } }).edit;
  assert.equal(edit.changeAnnotations["engram-ls"].needsConfirmation, true); // VS Code shows its refactor preview
});

test("inline completion through the LSP", async () => {
  const text = fs.readFileSync(path.join(root, "shop/cart.py"), "utf8");
  await conn.sendNotification("textDocument/didOpen", {
    textDocument: { uri: uri("shop/cart.py"), languageId: "python", version: 1, text },
  });
  const result = (await conn.sendRequest("textDocument/inlineCompletion", {
    textDocument: { uri: uri("shop/cart.py") }, position: { line: 5, character: 15 }, context: { triggerKind: 1 },
  })) as { items: { insertText: string }[] };
  assert.match(result.items[0].insertText, /^stub_/);
});

test("Engram: Reindex and Engram: Show Status", async () => {
  const result = await command<{ files: number; chunks: number }>("engram.reindex");
  assert.equal(result.files, 4); // the three workspace files and tool.lua from the refactor test
  const status = await command<{ models: Record<string, unknown>; version: string }>("engram.status");
  assert.equal((status.models as { backend: string }).backend, "stub");
});
