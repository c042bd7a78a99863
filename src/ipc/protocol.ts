// IPC wire format: newline-delimited JSON over a unix socket.
// request  {"id":1,"method":"info","params":{}}
// reply    {"id":1,"ok":true,"result":{...}} | {"id":1,"ok":false,"error":{code,message,hint}}
// event    {"id":1,"event":"datagram","data":{...}} (zero or more before the reply)
import type { ErrorCode } from '../util/errors.ts';

export const DEFAULT_SOCKET = '/tmp/pilot.sock';
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

export function socketPath(explicit?: string): string {
  return explicit ?? process.env.PILOT_SOCKET ?? DEFAULT_SOCKET;
}
