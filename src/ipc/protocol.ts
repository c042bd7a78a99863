// IPC wire format: newline-delimited JSON over a unix socket.
// request  {"id":1,"method":"info","params":{}}
// reply    {"id":1,"ok":true,"result":{...}} | {"id":1,"ok":false,"error":{code,message,hint}}
// event    {"id":1,"event":"datagram","data":{...}} (zero or more before the reply)
import type { ErrorCode } from '../util/errors.ts';
import { clientSocketPath } from './socket-path.ts';
/** A request line longer than this is hostile or broken: the connection is answered and closed. */
export const MAX_LINE = 1 << 20;

export interface IpcRequest {
  id: number | string;
  method: string;
  params?: Record<string, unknown>;
}

export interface IpcErrorBody {
  code: ErrorCode;
  message: string;
  hint?: string;
}

export type IpcMessage =
  | { id: number | string; ok: true; result: unknown }
  | { id: number | string; ok: false; error: IpcErrorBody }
  | { id: number | string; event: string; data: unknown };

/** --socket, $PILOT_SOCKET, else the private default (see socket-path.ts). */
export function socketPath(explicit?: string): string {
  return explicit ?? (process.env.PILOT_SOCKET || clientSocketPath());
}

/**
 * One line from the daemon, checked for shape (a reply line is untrusted input:
 * `null` or `[]` must not reach code that does `'event' in msg`). undefined if malformed.
 */
export function parseMessage(line: string): IpcMessage | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const m = v as Record<string, unknown>;
  if (typeof m.id !== 'number' && typeof m.id !== 'string') return undefined;
  if (typeof m.event === 'string') return m as IpcMessage;
  if (m.ok === true) return m as IpcMessage;
  if (m.ok !== false) return undefined;
  const e = m.error as Record<string, unknown> | null;
  if (typeof e !== 'object' || e === null || typeof e.code !== 'string' || typeof e.message !== 'string') return undefined;
  if (e.hint !== undefined && typeof e.hint !== 'string') return undefined;
  return m as IpcMessage;
}
