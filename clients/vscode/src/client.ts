// Starts engram-ls over stdio, restarts it with backoff when it crashes, and keeps its settings current.
import * as fs from "fs";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";
import { backoff } from "./render";
import { serverCommand, toServerSettings, ServerSettings } from "./settings";
import * as log from "./log";

export function currentSettings(): ServerSettings {
  const config = vscode.workspace.getConfiguration("engram");
  return toServerSettings((key) => config.get(key));
}

function onPath(name: string): boolean {
  const dirs = (process.env.PATH ?? "").split(process.platform === "win32" ? ";" : ":");
  return dirs.some((d) => d && fs.existsSync(`${d}/${name}`));
}

export class EngramClient {
  client: LanguageClient | undefined;
  private crashes = 0;
  private stopping = false;

  async start(): Promise<void> {
    const config = vscode.workspace.getConfiguration("engram");
    const cmd = serverCommand(config.get("server.path", ""), config.get("server.python", ""), onPath("engram-ls"));
    log.info(`starting ${cmd.command} ${cmd.args.join(" ")}`);
    const serverOptions: ServerOptions = { command: cmd.command, args: cmd.args, transport: TransportKind.stdio };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file" }],
      outputChannel: log.output(),
      initializationOptions: currentSettings(),
      middleware: {
        workspace: {
          configuration: (params) => params.items.map((item) => (item.section === "engram" ? currentSettings() : null)),
        },
        // Answers open in a Markdown preview (commands.ts); the server's generated file need not open as text too.
        window: { showDocument: async () => ({ success: true }) },
      },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          if (this.stopping) {
            return { action: CloseAction.DoNotRestart, handled: true };
          }
          const delay = backoff(this.crashes++);
          if (delay === undefined) {
            return { action: CloseAction.DoNotRestart, message: "engram-ls crashed repeatedly; run Engram: Restart Server" };
          }
          log.error(`engram-ls stopped; restarting in ${delay} ms`);
          setTimeout(() => void this.restart(), delay);
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
    };
    this.client = new LanguageClient("engram-ls", "engram-ls", serverOptions, clientOptions);
    this.client.registerProposedFeatures();
    this.stopping = false;
    await this.client.start();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const client = this.client;
    this.client = undefined;
    if (client && client.isRunning()) {
      await client.stop();
    }
  }

  settingsChanged(e: vscode.ConfigurationChangeEvent): void {
    if (e.affectsConfiguration("engram.server")) {
      void this.restart();
    } else if (e.affectsConfiguration("engram") && this.client?.isRunning()) {
      void this.client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { engram: currentSettings() },
      });
    }
  }

  /** Runs a server command (one object argument); undefined when the server is not running. */
  async execute<T>(command: string, arg?: object): Promise<T | undefined> {
    if (!this.client?.isRunning()) {
      void vscode.window.showWarningMessage("engram-ls is not running (Engram: Restart Server)");
      return undefined;
    }
    return this.client.sendRequest("workspace/executeCommand", { command, arguments: arg ? [arg] : [] });
  }
}
