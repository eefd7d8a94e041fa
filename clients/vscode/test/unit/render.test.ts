import { test } from "node:test";
import assert from "node:assert/strict";
import { backoff, firstLine, searchArgs, selectionArgs, statusMarkdown, statusText, toPicks } from "../../src/render";

test("command arguments are the single objects the server expects", () => {
  assert.deepEqual(searchArgs("  parse dates "), { query: "parse dates", k: 20 });
  const range = { start: { line: 3, character: 0 }, end: { line: 8, character: 2 } };
  assert.deepEqual(selectionArgs("file:///a.py", range), { uri: "file:///a.py", range });
  assert.deepEqual(selectionArgs("file:///a.py", range, "use a constant", true), {
    uri: "file:///a.py", range, instruction: "use a constant", apply: true,
  });
});

test("search hits become quick-pick items that jump to 0-based lines", () => {
  const picks = toPicks([{ path: "net/http.py", uri: "file:///w/net/http.py", start_line: 4, end_line: 9, score: 0.51234,
    text: "\n\ndef fetch_url(url):\n    pass" }]);
  assert.equal(picks[0].label, "net/http.py:4");
  assert.equal(picks[0].description, "score 0.512");
  assert.equal(picks[0].detail, "def fetch_url(url):");
  assert.equal(picks[0].line, 3);
  assert.equal(firstLine("   \n  x = 1 \n"), "x = 1");
});

test("status text prefers indexing, then counts chunks and workers", () => {
  assert.match(statusText(undefined), /stopped/);
  assert.match(statusText({ index: { "/w": { files: 1, chunks: 2, indexing: true } } }), /indexing/);
  const text = statusText({
    index: { "/w": { files: 3, chunks: 40, indexing: false } },
    models: { coding: { model: "Qwen", alive: 1, size: 1 }, research: { model: "Qwen", alive: 0, size: 1 }, backend: "llama" },
  });
  assert.equal(text, "$(database) engram: 40 chunks · 1/2 workers");
  assert.match(statusText(undefined, "12/40 files"), /12\/40 files/);
});

test("status markdown lists roots and pools", () => {
  const md = statusMarkdown({ version: "0.1.0", index: { "/w": { files: 3, chunks: 40, indexing: false } },
    models: { coding: { model: "Qwen", alive: 1, size: 1, busy: 0 } } });
  assert.match(md, /# engram-ls 0.1.0/);
  assert.match(md, /`\/w`: 3 files, 40 chunks/);
  assert.match(md, /coding: Qwen — 1\/1 workers alive, 0 busy/);
});

test("restart backoff doubles and gives up", () => {
  assert.deepEqual([0, 1, 2, 3, 4].map((n) => backoff(n)), [1000, 2000, 4000, 8000, 16000]);
  assert.equal(backoff(5), undefined);
  assert.equal(backoff(10, 20), 30000);
});
