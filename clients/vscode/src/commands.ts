// The extension's commands: thin wrappers that ask, call the server, and show the result.
import * as vscode from "vscode";
import { EngramClient } from "./client";
import { Hit, Range, searchArgs, selectionArgs, statusMarkdown, Status, toPicks } from "./render";
import * as log from "./log";

interface Answer {
  markdown: string;
  uri: string;
}
interface EditResult {
  applied: boolean;
  files: string[];
}

function range(selection: vscode.Selection): Range {
  return {
    start: { line: selection.start.line, character: selection.start.character },
    end: { line: selection.end.line, character: selection.end.character },
  };
}

async function withProgress<T>(title: string, work: () => Promise<T>): Promise<T> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title }, work);
}

async function showAnswer(answer: Answer | undefined): Promise<void> {
  if (answer?.uri) {
    await vscode.commands.executeCommand("markdown.showPreviewToSide", vscode.Uri.parse(answer.uri));
  }
}

function reportEdit(result: EditResult | undefined): void {
  if (!result) {
    return;
  }
  const n = result.files.length;
  void vscode.window.showInformationMessage(
    result.applied ? `engram-ls: applied edits to ${n} file(s)` : `engram-ls: ${n} file(s) proposed; nothing applied`,
  );
}

export function register(context: vscode.ExtensionContext, engram: EngramClient): void {
  const add = (id: string, fn: (...args: unknown[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  add("engramLs.explainWorkspace", async () => {
    const question = await vscode.window.showInputBox({ prompt: "Ask about this workspace", ignoreFocusOut: true });
    if (question?.trim()) {
      const answer = await withProgress("engram-ls: thinking…", () =>
        engram.execute<Answer>("engram.explainWorkspace", { question }),
      );
      await showAnswer(answer);
    }
  });

  add("engramLs.refactorWorkspace", async () => {
    const instruction = await vscode.window.showInputBox({ prompt: "Refactor the workspace: what should change?" });
    if (instruction?.trim()) {
      // The server sends workspace/applyEdit with needsConfirmation: VS Code shows its refactor preview first.
      const result = await withProgress("engram-ls: planning and writing edits…", () =>
        engram.execute<EditResult>("engram.refactorWorkspace", { instruction, apply: true }),
      );
      reportEdit(result);
    }
  });

  add("engramLs.searchSimilar", async () => {
    const editor = vscode.window.activeTextEditor;
    const selected = editor && !editor.selection.isEmpty ? editor.document.getText(editor.selection) : "";
    const query = selected || (await vscode.window.showInputBox({ prompt: "Search similar code" }));
    if (!query?.trim()) {
      return;
    }
    const result = await engram.execute<{ results: Hit[] }>("engram.search", searchArgs(query));
    const picks = toPicks(result?.results ?? []);
    const chosen = await vscode.window.showQuickPick(picks, { placeHolder: `${picks.length} results`, matchOnDetail: true });
    if (chosen) {
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(chosen.uri));
      const pos = new vscode.Position(chosen.line, 0);
      await vscode.window.showTextDocument(doc, { selection: new vscode.Range(pos, pos) });
    }
  });

  add("engramLs.reindexWorkspace", async () => {
    const result = await withProgress("engram-ls: reindexing…", () =>
      engram.execute<{ files: number; chunks: number; seconds: number }>("engram.reindex"),
    );
    if (result) {
      void vscode.window.showInformationMessage(
        `engram-ls: ${result.files} files, ${result.chunks} chunks in ${result.seconds.toFixed(1)} s`,
      );
    }
  });

  add("engramLs.showStatus", async () => {
    const status = await engram.execute<Status>("engram.status");
    if (status) {
      log.output().info(statusMarkdown(status));
      const doc = await vscode.workspace.openTextDocument({ language: "markdown", content: statusMarkdown(status) });
      await vscode.window.showTextDocument(doc, { preview: true });
    }
  });

  add("engramLs.restartServer", async () => {
    await engram.restart();
    void vscode.window.showInformationMessage("engram-ls: restarted");
  });

  add("engramLs.explainSelectionCommand", async () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      return;
    }
    const answer = await withProgress("engram-ls: explaining…", () =>
      engram.execute<Answer>("engram.explainSelection", selectionArgs(editor.document.uri.toString(), range(editor.selection))),
    );
    await showAnswer(answer);
  });

  add("engramLs.refactorSelectionCommand", async () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      return;
    }
    const instruction = await vscode.window.showInputBox({ prompt: "Refactor the selection: what should change?" });
    if (instruction?.trim()) {
      const result = await withProgress("engram-ls: rewriting…", () =>
        engram.execute<EditResult>(
          "engram.refactorSelection",
          selectionArgs(editor.document.uri.toString(), range(editor.selection), instruction, true),
        ),
      );
      reportEdit(result);
    }
  });
}
