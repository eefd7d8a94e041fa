// Maps VS Code's `engram.*` configuration to the server's camelCase settings object (pure: no vscode import).

export type Getter = (key: string) => unknown;

export interface ServerSettings {
  models: { coding: Record<string, unknown>; research: Record<string, unknown> };
  backend: { kind: string; url: string | null };
  index: { ignore: string[]; maxFileBytes: number; includeSecrets: boolean };
  completion: { enabled: boolean; debounceMs: number; maxTokens: number };
  hover: { useModel: boolean; modelTimeoutMs: number };
  logLevel: string;
}

const MODEL_KEYS = ["path", "poolSize", "threads", "contextLength"] as const;

function pick<T>(get: Getter, key: string, fallback: T): T {
  const value = get(key);
  return value === undefined ? fallback : (value as T);
}

function model(get: Getter, role: "coding" | "research"): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of MODEL_KEYS) {
    const value = get(`models.${role}.${key}`);
    if (value !== undefined && value !== null && value !== "") {
      out[key] = value;
    }
  }
  return out;
}

/** The settings sent as initializationOptions and answered to workspace/configuration. */
export function toServerSettings(get: Getter): ServerSettings {
  return {
    models: { coding: model(get, "coding"), research: model(get, "research") },
    backend: { kind: pick(get, "backend.kind", "llama"), url: pick<string | null>(get, "backend.url", null) || null },
    index: {
      ignore: pick<string[]>(get, "index.ignore", []),
      maxFileBytes: pick(get, "index.maxFileBytes", 1_000_000),
      includeSecrets: pick(get, "index.includeSecrets", false),
    },
    completion: {
      enabled: pick(get, "completion.enabled", true),
      debounceMs: pick(get, "completion.debounceMs", 150),
      maxTokens: pick(get, "completion.maxTokens", 48),
    },
    hover: { useModel: pick(get, "hover.useModel", true), modelTimeoutMs: pick(get, "hover.modelTimeoutMs", 4000) },
    logLevel: pick(get, "logLevel", "info"),
  };
}

export interface ServerCommand {
  command: string;
  args: string[];
}

/** How to start the server: a configured executable, `engram-ls` on PATH, or `python -m engram_ls.server.cli`. */
export function serverCommand(path: string, python: string, onPath: boolean): ServerCommand {
  if (path) {
    return { command: path, args: ["serve"] };
  }
  if (!python && onPath) {
    return { command: "engram-ls", args: ["serve"] };
  }
  return { command: python || "python3", args: ["-m", "engram_ls.server.cli", "serve"] };
}
