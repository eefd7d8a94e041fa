// A status bar item: indexing progress and the model workers' state, from engram.status.
import * as vscode from "vscode";
import { EngramClient } from "./client";
import { Status, statusText } from "./render";

export function register(context: vscode.ExtensionContext, engram: EngramClient): void {
  const item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  item.command = "engramLs.showStatus";
  item.tooltip = "engram-ls: show status";
  item.text = statusText(undefined);
  item.show();
  const refresh = async () => {
    try {
      const status = engram.client?.isRunning()
        ? ((await engram.client.sendRequest("workspace/executeCommand", { command: "engram.status", arguments: [] })) as Status)
        : undefined;
      item.text = statusText(status);
    } catch {
      item.text = statusText(undefined);
    }
  };
  const timer = setInterval(() => void refresh(), 3000);
  context.subscriptions.push(item, { dispose: () => clearInterval(timer) });
}
