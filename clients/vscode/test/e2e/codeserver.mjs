// Real VS Code test: the built .vsix in code-server (VS Code 1.100 in a browser), driven by playwright-core with
// Debian's chromium. Writes what the page showed to $ENGRAM_E2E_OUT (JSON) and a screenshot to $ENGRAM_E2E_SHOT.
// $ENGRAM_E2E_SCENARIO picks what a user does: "features" (status bar, palette search, hover, code actions),
// "ghost" (typing in a Python file with the real model: ghost text, Tab; $ENGRAM_E2E_TRACE is the LSP log written by
// tests/vscode/lsp_tee.py) or "loose" (no folder open: a file opened on its own is still served).
// $ENGRAM_E2E_SETTINGS (JSON) is merged into the user settings.
import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as net from "node:net";

const ext = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
const tools = path.join(ext, ".tools");
const require = createRequire(path.join(tools, "package.json"));
const { chromium } = require("playwright-core");
const codeServer = path.join(tools, "node_modules", ".bin", "code-server");
const out = process.env.ENGRAM_E2E_OUT;
const shot = process.env.ENGRAM_E2E_SHOT;
const workspace = process.env.ENGRAM_E2E_WORKSPACE;
const engram = process.env.ENGRAM_LS;
const scenario = process.env.ENGRAM_E2E_SCENARIO || "features";
const trace = process.env.ENGRAM_E2E_TRACE;
const results = { scenario, steps: {} };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "engram-cs-"));
const dirs = { user: path.join(tmp, "user"), exts: path.join(tmp, "ext"), xdg: path.join(tmp, "xdg") };
for (const d of Object.values(dirs)) {fs.mkdirSync(d, { recursive: true });}
fs.mkdirSync(path.join(dirs.user, "User"), { recursive: true });
fs.writeFileSync(path.join(dirs.user, "User", "settings.json"), JSON.stringify({
  "security.workspace.trust.enabled": false,
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "extensions.autoUpdate": false,
  "telemetry.telemetryLevel": "off",
  "engram.server.path": engram,
  "engram.backend.kind": "stub",
  "engram.completion.debounceMs": 0,
  "files.simpleDialog.enable": true,
  ...JSON.parse(process.env.ENGRAM_E2E_SETTINGS || "{}"),
}));
const env = { ...process.env, XDG_CONFIG_HOME: dirs.xdg, XDG_DATA_HOME: dirs.xdg, ENGRAM_LS_CACHE: path.join(tmp, "cache") };
const common = ["--user-data-dir", dirs.user, "--extensions-dir", dirs.exts];

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

async function until(what, timeoutMs, fn) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try { const v = await fn(); if (v) {return v;} } catch { /* not yet */ }
    if (Date.now() > end) {throw new Error(`timed out waiting for ${what}`);}
    await new Promise((r) => setTimeout(r, 250));
  }
}

let currentPage;
async function step(name, fn) {
  try {
    results.steps[name] = (await fn()) ?? true;
  } catch (e) {
    results.steps[name] = { error: String(e && e.stack || e) };
    if (shot && currentPage) {await currentPage.screenshot({ path: `${shot}.${name}-failed.png` }).catch(() => {});}
  }
}

async function palette(page, command) {
  await page.keyboard.press("F1");
  await page.waitForSelector(".quick-input-widget", { state: "visible" });
  await page.keyboard.type(command);
  await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${command.replace(/^>/, "")}")`);
  await page.keyboard.press("Enter");
}

// Go to Line, checked: the widget must be in go-to-line mode before the line is entered, and the status bar must show
// the cursor there after (typing into the widget while it still opens, or Enter before it has read the line, was
// seen to leave it open on a loaded CI machine).
async function goToLine(page, line, col) {
  const input = page.locator(".quick-input-widget input");
  await until("the go-to-line box", 30000, async () => {
    if (!(await input.isVisible()) || !(await input.inputValue()).startsWith(":")) {
      await page.keyboard.press("Escape");
      await page.keyboard.press("Control+G");
      await input.waitFor({ state: "visible", timeout: 5000 });
    }
    return (await input.inputValue()).startsWith(":");
  });
  await input.fill(`:${line}:${col}`);
  await until(`the cursor at ${line}:${col}`, 30000, async () => {
    // Enter on the box itself: a key sent to the page after the box closed would type a newline into the file
    if (await input.isVisible()) {await input.press("Enter", { timeout: 2000 }).catch(() => {});}
    const items = await page.locator(".statusbar-item").allInnerTexts();
    return items.some((t) => t.includes(`Ln ${line}, Col ${col}`));
  });
  await page.waitForSelector(".quick-input-widget", { state: "hidden" });
}

async function features(page) {
  await step("status_bar", async () => until("the engram status bar item", 90000, async () => {
    const text = await page.locator(".statusbar-item").allInnerTexts();
    const item = text.find((t) => t.includes("engram:") && t.includes("chunks"));
    return item;
  }));

  await step("search_command", async () => {
    await palette(page, "Engram: Search Similar Code");
    await page.waitForSelector(".quick-input-widget input", { state: "visible" });
    await page.keyboard.type("download a web page");
    await page.keyboard.press("Enter");
    const row = await until("search results", 30000, async () => {
      const rows = await page.locator(".quick-input-list .monaco-list-row").allInnerTexts();
      return rows.length && rows[0].includes(":") ? rows : undefined;
    });
    await page.keyboard.press("Enter");
    const tab = await until("the result to open", 30000, async () => {
      const tabs = await page.locator(".tabs-container .tab").allInnerTexts();
      return tabs.find((t) => t.includes("http_client.py"));
    });
    return { first: row[0], tab };
  });

  await step("hover", async () => {
    // http_client.py is open from the search; line 15 calls fetch_url, defined in the same file
    await goToLine(page, 15, 20);
    return until("the hover", 60000, async () => {
      // a fresh hover each time: one that answered before the model says the explanation is on its way
      await page.keyboard.press("Escape");
      await page.keyboard.press("Control+K");
      await page.keyboard.press("Control+I");
      const text = await page.locator(".monaco-hover").first().innerText({ timeout: 3000 });
      return text.includes("fetch_url") && text.includes("stub_") ? text : undefined;
    });
  });

  await step("code_action", async () => {
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+.");
    return until("the code actions", 30000, async () => {
      const text = await page.locator(".action-widget").first().innerText({ timeout: 3000 });
      return text.includes("Engram: Explain selection") ? text : undefined;
    });
  });

  await page.screenshot({ path: shot });
  await page.keyboard.press("Escape");
}

// The LSP messages exchanged so far, from tests/vscode/lsp_tee.py's log: {t (s), dir ("in": to the server), msg}.
function lspTrace() {
  if (!trace || !fs.existsSync(trace)) {return [];}
  return fs.readFileSync(trace, "utf8").split("\n").filter(Boolean).flatMap((l) => {
    try { return [JSON.parse(l)]; } catch { return []; } // a line still being written
  });
}

// Every inline-completion request the editor sent: where, whether it cancelled it, and what the server answered.
function inlineRequests() {
  const msgs = lspTrace();
  const reqs = new Map();
  for (const { t, dir, msg } of msgs) {
    if (dir === "in" && msg.method === "textDocument/inlineCompletion") {
      reqs.set(msg.id, { id: msg.id, sent: t, position: msg.params.position, cancelled: null });
    }
  }
  for (const { t, dir, msg } of msgs) {
    const r = reqs.get(dir === "in" && msg.method === "$/cancelRequest" ? msg.params.id : msg.id);
    if (!r) {continue;}
    if (dir === "in" && msg.method === "$/cancelRequest") {
      r.cancelled = t;
    } else if (dir === "out" && msg.method === undefined) {
      const items = Array.isArray(msg.result) ? msg.result : msg.result?.items ?? [];
      Object.assign(r, { answered: t, insertText: items.map((i) => i.insertText?.value ?? i.insertText).join("") || null,
        error: msg.error ?? null });
    }
  }
  return [...reqs.values()].sort((a, b) => a.sent - b.sent);
}

// The server's completion counters from the newest engram.status answer (the status bar asks every 3 s).
function completionStats() {
  const msgs = lspTrace();
  const ids = new Set(msgs.filter(({ dir, msg }) => dir === "in" && msg.method === "workspace/executeCommand"
    && msg.params.command === "engram.status").map(({ msg }) => msg.id));
  const answers = msgs.filter(({ dir, msg }) => dir === "out" && ids.has(msg.id) && msg.result);
  return answers.length ? { t: answers.at(-1).t, ...answers.at(-1).msg.result.completion } : undefined;
}

async function openFile(page, name) {
  await page.keyboard.press("Control+P");
  await page.waitForSelector(".quick-input-widget input", { state: "visible" });
  await page.keyboard.type(name);
  await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${name}")`);
  await page.keyboard.press("Enter");
  await until(`${name} to open`, 30000, async () =>
    (await page.locator(".tabs-container .tab.active").allInnerTexts()).some((t) => t.includes(name)));
}

// Records every ghost text the editor draws (the inline part and any further lines), with the page's clock.
async function recordGhostText(page) {
  await page.evaluate(() => {
    window.__ghosts = [];
    let last = "";
    const read = () => {
      const inline = [...document.querySelectorAll('.monaco-editor [class*="ghost-text-decoration"]')]
        .filter((e) => !e.parentElement?.closest('[class*="ghost-text-decoration"]'))
        .map((e) => e.textContent).join("").replace(/\u00a0/g, " ");
      const more = [...document.querySelectorAll(".monaco-editor .ghost-text .view-line")]
        .map((e) => e.textContent.replace(/\u00a0/g, " "));
      const key = JSON.stringify([inline, more]);
      if (key !== last) {
        last = key;
        window.__ghosts.push({ t: Date.now() / 1000, inline, more });
      }
    };
    new MutationObserver(read).observe(document.body, { subtree: true, childList: true, characterData: true,
      attributes: true, attributeFilter: ["class"] });
  });
}

const ghosts = (page) => page.evaluate(() => window.__ghosts);

async function ghost(page) {
  const file = process.env.ENGRAM_E2E_FILE;
  const ghostShot = process.env.ENGRAM_E2E_GHOST_SHOT;
  await step("status_bar", async () => until("the engram status bar item", 120000, async () => {
    const text = await page.locator(".statusbar-item").allInnerTexts();
    return text.find((t) => t.includes("engram:") && t.includes("chunks") && t.includes("workers"));
  }));
  await openFile(page, path.basename(file));
  await goToLine(page, 16, 1); // the empty last line, after `return apply_discount(subtotal)`
  await recordGhostText(page);
  const before = inlineRequests().length;

  // Type a method up to `return`; once the server has that request, type on: the editor cancels it and asks again.
  await step("superseded", async () => {
    await page.keyboard.type("\n    def average_price(self):\n        return", { delay: 30 });
    const first = await until("the request for `return`", 60000, async () =>
      inlineRequests().slice(before).find((r) => r.position.line === 17 && r.position.character === 14));
    await page.keyboard.type(" ");
    return { first: first.id, typed: Date.now() / 1000 };
  });

  await step("ghost_text", async () => {
    const shown = await until("ghost text from the model", 180000, async () => {
      const g = (await ghosts(page)).at(-1);
      return g && g.inline.trim() ? g : undefined;
    });
    if (ghostShot) {await page.screenshot({ path: ghostShot });}
    return shown;
  });

  await step("accepted", async () => {
    await page.keyboard.press("Tab");
    await until("the ghost text to be accepted", 30000, async () => !(await ghosts(page)).at(-1).inline);
    await page.keyboard.press("Control+S");
    return until("the saved file", 30000, async () => {
      const text = fs.readFileSync(file, "utf8");
      return /def average_price\(self\):\n {8}return \S/.test(text) ? text : undefined;
    });
  });

  await step("stats", async () => {
    const typed = Date.now() / 1000;
    return until("a status answer after the typing", 30000, async () => {
      const s = completionStats();
      return s && s.t > typed ? s : undefined;
    });
  });
  results.requests = inlineRequests().slice(before);
  results.ghosts = await ghosts(page);
}

async function loose(page) {
  const file = process.env.ENGRAM_E2E_FILE;
  await page.evaluate(() => { // every notification shown, for the test to check that nothing warned
    window.__toasts = [];
    new MutationObserver(() => {
      for (const el of document.querySelectorAll(".notification-toast .notification-list-item-message")) {
        if (!window.__toasts.includes(el.textContent)) {window.__toasts.push(el.textContent);}
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await step("open_file", async () => {
    // Quick Open takes an absolute path to a file outside any folder, as a user would paste it
    await page.keyboard.press("Control+P");
    await page.waitForSelector(".quick-input-widget input", { state: "visible" });
    await page.keyboard.type(file);
    await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${path.basename(file)}")`, { timeout: 30000 });
    await page.keyboard.press("Enter");
    return until("the file to open", 30000, async () =>
      (await page.locator(".tabs-container .tab.active").allInnerTexts()).find((t) => t.includes(path.basename(file))));
  });
  if (results.steps.open_file.error) {return;}
  await step("told", async () => until("the no-workspace-folder notice", 60000, async () => {
    const toasts = await page.locator(".notifications-toasts").allInnerTexts();
    return toasts.find((t) => t.includes("no workspace folder"));
  }));
  await step("status_bar", async () => until("the loose folder indexed", 90000, async () => {
    const text = await page.locator(".statusbar-item").allInnerTexts();
    return text.find((t) => /engram: [1-9]\d* chunks/.test(t));
  }));
  await step("hover", async () => {
    await goToLine(page, 15, 20);
    return until("the hover", 60000, async () => {
      // a fresh hover each time: one that answered before the model says the explanation is on its way
      await page.keyboard.press("Escape");
      await page.keyboard.press("Control+K");
      await page.keyboard.press("Control+I");
      const text = await page.locator(".monaco-hover").first().innerText({ timeout: 3000 });
      return text.includes("apply_discount") && text.includes("pricing.py") ? text : undefined;
    });
  });
  await step("search_command", async () => {
    await page.keyboard.press("Escape");
    await palette(page, "Engram: Search Similar Code");
    await page.waitForSelector(".quick-input-widget input", { state: "visible" });
    await page.keyboard.type("take ten percent off");
    await page.keyboard.press("Enter");
    return until("search results", 30000, async () => {
      const rows = await page.locator(".quick-input-list .monaco-list-row").allInnerTexts();
      return rows.length && rows[0].includes(":") ? rows : undefined;
    });
  });
  if (shot) {await page.screenshot({ path: shot });}
  await page.keyboard.press("Escape");
  results.toasts = await page.evaluate(() => window.__toasts);
}

let server;
let browser;
try {
  execFileSync(codeServer, [...common, "--install-extension", path.join(ext, "engram-ls.vsix")], { env, stdio: "pipe" });
  const port = await freePort();
  server = spawn(codeServer, [...common, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--disable-telemetry",
    "--disable-workspace-trust", ...(scenario === "loose" ? [] : [workspace])], { env, detached: true, stdio: "ignore" });
  await until("code-server /healthz", 60000, async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox",
    "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(scenario === "loose" ? `http://127.0.0.1:${port}/?ew=true`
    : `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.waitForSelector(".monaco-workbench", { timeout: 60000 });
  currentPage = page;

  await ({ features, ghost, loose })[scenario](page);
} catch (e) {
  results.fatal = String(e && e.stack || e);
} finally {
  fs.writeFileSync(out, JSON.stringify(results, null, 2));
  if (browser) {await browser.close().catch(() => {});}
  if (server) { try { process.kill(-server.pid, "SIGKILL"); } catch { /* gone */ } }
  fs.rmSync(tmp, { recursive: true, force: true });
}
