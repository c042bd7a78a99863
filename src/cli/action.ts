// The shape every pilotctl command handler has, in one place: main.ts's run() wraps a
// handler with the global options, output settings and a lazily connected IPC client.
import type { IpcClient } from '../ipc/client.ts';
import type { OutputOptions } from './output.ts';

/** Options every command takes (`--json`, `--socket`, `--home`). */
export interface Globals {
  json?: boolean;
  socket?: string;
  home?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: commander hands positional arguments over untyped; each handler declares its own.
export type Action = (g: Globals, out: OutputOptions, client: () => IpcClient, ...args: any[]) => Promise<void>;
// biome-ignore lint/suspicious/noExplicitAny: the same untyped commander arguments, passed through.
export type RunWrapper = (action: Action) => (...args: any[]) => Promise<void>;
