// The Steward extension: starts `steward lsp` and connects VS Code to it.
// Everything the editor shows (diagnostics, completion, hover, rename,
// formatting, semantic highlighting, quick fixes, inlay hints) comes from the
// server; this file only starts it and restarts it when asked or configured.

import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";

let client: LanguageClient | undefined;

function createClient(): LanguageClient {
  const config = vscode.workspace.getConfiguration("steward");
  const command = config.get<string>("server.path", "steward");
  const debounceMs = config.get<number>("server.debounceMs", 10);
  const serverOptions: ServerOptions = {
    command,
    args: ["lsp"],
    transport: TransportKind.stdio,
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: "steward" },
      { scheme: "untitled", language: "steward" },
    ],
    initializationOptions: { debounceMs },
    outputChannelName: "Steward",
  };
  return new LanguageClient("steward", "Steward", serverOptions, clientOptions);
}

async function start(): Promise<void> {
  client = createClient();
  try {
    await client.start();
  } catch (error) {
    const command = vscode.workspace
      .getConfiguration("steward")
      .get<string>("server.path", "steward");
    void vscode.window.showErrorMessage(
      `Steward: could not start \`${command} lsp\` (${String(error)}). ` +
        "Install steward (see docs/editor.md) or set `steward.server.path`.",
    );
  }
}

async function restart(): Promise<void> {
  if (client) {
    await client.stop();
    client = undefined;
  }
  await start();
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  context.subscriptions.push(
    vscode.commands.registerCommand("steward.restartServer", restart),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("steward.server")) {
        void restart();
      }
    }),
  );
  await start();
}

export async function deactivate(): Promise<void> {
  if (client) {
    await client.stop();
  }
}
