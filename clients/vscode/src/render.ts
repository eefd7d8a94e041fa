// Pure helpers: command arguments, search-result picks, status text (no vscode import, unit-tested).

export interface Position {
  line: number;
  character: number;
}
export interface Range {
  start: Position;
  end: Position;
}

export interface Hit {
  path: string;
  uri: string;
  start_line: number;
  end_line: number;
  score: number;
  text: string;
}

export interface Pick {
  label: string;
  description: string;
  detail: string;
  uri: string;
  line: number; // 0-based, for revealing
}

export function searchArgs(query: string, k = 20): { query: string; k: number } {
  return { query: query.trim(), k };
}

export function selectionArgs(uri: string, range: Range, instruction?: string, apply?: boolean) {
  const arg: Record<string, unknown> = { uri, range };
  if (instruction !== undefined) {
    arg.instruction = instruction;
  }
  if (apply !== undefined) {
    arg.apply = apply;
  }
  return arg;
}

export function firstLine(text: string): string {
  const line = text.split("\n").find((l) => l.trim().length > 0) ?? "";
  return line.trim();
}

export function toPicks(hits: Hit[]): Pick[] {
  return hits.map((h) => ({
    label: `${h.path}:${h.start_line}`,
    description: `score ${h.score.toFixed(3)}`,
    detail: firstLine(h.text),
    uri: h.uri,
    line: Math.max(0, h.start_line - 1),
  }));
}

export interface Status {
  version?: string;
  index?: Record<string, { files: number; chunks: number; indexing: boolean }>;
  models?: Record<string, { model?: string; alive?: number; size?: number; busy?: number } | string | boolean>;
}

/** The status bar text: indexing progress wins, then the models' state. */
export function statusText(status: Status | undefined, progress?: string): string {
  if (progress) {
    return `$(sync~spin) engram: ${progress}`;
  }
  if (!status) {
    return "$(circle-slash) engram: stopped";
  }
  const roots = Object.values(status.index ?? {});
  if (roots.some((r) => r.indexing)) {
    return "$(sync~spin) engram: indexing";
  }
  const chunks = roots.reduce((n, r) => n + (r.chunks ?? 0), 0);
  const pools = Object.values(status.models ?? {}).filter(
    (p): p is { model?: string; alive?: number; size?: number; busy?: number } => typeof p === "object" && p !== null,
  );
  const alive = pools.reduce((n, p) => n + (p.alive ?? 0), 0);
  const size = pools.reduce((n, p) => n + (p.size ?? 0), 0);
  const models = size ? `${alive}/${size} workers` : "models starting";
  return `$(database) engram: ${chunks} chunks · ${models}`;
}

export function statusMarkdown(status: Status): string {
  const lines = [`# engram-ls ${status.version ?? ""}`, "", "## Index"];
  for (const [root, info] of Object.entries(status.index ?? {})) {
    lines.push(`- \`${root}\`: ${info.files} files, ${info.chunks} chunks${info.indexing ? " (indexing)" : ""}`);
  }
  lines.push("", "## Models");
  for (const [role, pool] of Object.entries(status.models ?? {})) {
    if (typeof pool === "object" && pool !== null) {
      lines.push(`- ${role}: ${pool.model ?? "?"} — ${pool.alive ?? 0}/${pool.size ?? 0} workers alive, ${pool.busy ?? 0} busy`);
    }
  }
  return lines.join("\n");
}

/** Restart delays after crashes: 1 s, 2 s, 4 s … capped at 30 s; undefined once `max` is exceeded. */
export function backoff(attempt: number, max = 5): number | undefined {
  if (attempt >= max) {
    return undefined;
  }
  return Math.min(30_000, 1000 * 2 ** attempt);
}
