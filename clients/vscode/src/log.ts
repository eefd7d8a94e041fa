// The "engram-ls" output channel: the extension's own log and the server's stderr.
import * as vscode from "vscode";

let channel: vscode.LogOutputChannel | undefined;

export function output(): vscode.LogOutputChannel {
  channel ??= vscode.window.createOutputChannel("engram-ls", { log: true });
  return channel;
}

export function info(message: string): void {
  output().info(message);
}

export function error(message: string): void {
  output().error(message);
}
