// Real VS Code test: the built .vsix in code-server (VS Code 1.100 in a browser), driven by playwright-core with
// Debian's chromium. Writes what the page showed to $ENGRAM_E2E_OUT (JSON) and a screenshot to $ENGRAM_E2E_SHOT.
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
const results = { steps: {} };

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

async function step(name, fn) {
  try { results.steps[name] = (await fn()) ?? true; } catch (e) { results.steps[name] = { error: String(e && e.stack || e) }; }
}

let server;
let browser;
try {
  execFileSync(codeServer, [...common, "--install-extension", path.join(ext, "engram-ls.vsix")], { env, stdio: "pipe" });
  const port = await freePort();
  server = spawn(codeServer, [...common, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--disable-telemetry",
    "--disable-workspace-trust", workspace], { env, detached: true, stdio: "ignore" });
  await until("code-server /healthz", 60000, async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox",
    "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.waitForSelector(".monaco-workbench", { timeout: 60000 });

  await step("status_bar", async () => until("the engram status bar item", 90000, async () => {
    const text = await page.locator(".statusbar-item").allInnerTexts();
    const item = text.find((t) => t.includes("engram:") && t.includes("chunks"));
    return item;
  }));

  async function palette(command) {
    await page.keyboard.press("F1");
    await page.waitForSelector(".quick-input-widget", { state: "visible" });
    await page.keyboard.type(command);
    await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${command.replace(/^>/, "")}")`);
    await page.keyboard.press("Enter");
  }

  await step("search_command", async () => {
    await palette("Engram: Search Similar Code");
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
    await page.keyboard.press("Control+G");
    await page.waitForSelector(".quick-input-widget input", { state: "visible" });
    await page.keyboard.type("15:20");
    await page.keyboard.press("Enter");
    return until("the hover", 60000, async () => {
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
} catch (e) {
  results.fatal = String(e && e.stack || e);
} finally {
  fs.writeFileSync(out, JSON.stringify(results, null, 2));
  if (browser) {await browser.close().catch(() => {});}
  if (server) { try { process.kill(-server.pid, "SIGKILL"); } catch { /* gone */ } }
  fs.rmSync(tmp, { recursive: true, force: true });
}
