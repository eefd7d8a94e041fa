// engram-ls for VS Code: wires the client, commands and status bar together.
import * as vscode from "vscode";
import { EngramClient } from "./client";
import * as commands from "./commands";
import * as log from "./log";
import * as statusBar from "./statusBar";

let engram: EngramClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  engram = new EngramClient();
  commands.register(context, engram);
  statusBar.register(context, engram);
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((e) => engram?.settingsChanged(e)));
  try {
    await engram.start();
  } catch (e) {
    log.error(`engram-ls failed to start: ${e}`);
    void vscode.window.showErrorMessage(`engram-ls failed to start: ${e}. Check engram.server.path.`);
  }
}

export async function deactivate(): Promise<void> {
  await engram?.stop();
}
