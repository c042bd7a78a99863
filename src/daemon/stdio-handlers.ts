// IPC methods of the stdio service (port 1000, src/services/stdio.ts):
// stdio_recv takes lines from the queue (and waits for more), stdio_status
// shows its counters. Merged into the service handlers.
import { formatAddress } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import type { Handlers } from '../ipc/server.ts';
import type { Daemon } from './daemon.ts';
import { parseTarget } from './targets.ts';
import { readUntilDone } from './ipc-wait.ts';
import type { StdioMessage, StdioQueue } from '../services/stdio.ts';

function queue(d: Daemon): StdioQueue {
  const q = d.services?.stdio;
  if (!q)
    throw new PilotError(
      'CONNECTION_REFUSED',
      'the stdio service (port 1000) is disabled on this node',
      'enable it in $PILOT_HOME/services.json ("stdio": true) and restart the daemon, or use: pilotctl listen 1000 for raw datagrams',
    );
  return q;
}

/** The address text of a peer named by address, node id or hostname. */
async function peerText(d: Daemon, target: string): Promise<string> {
  const t = parseTarget(target, d.address?.network ?? 0);
  if ('address' in t) return formatAddress(t.address);
  return formatAddress((await d.resolveTarget(target)).address);
}

export function stdioHandlers(d: Daemon): Pick<Handlers, 'stdio_recv' | 'stdio_status'> {
  return {
    /**
     * Take lines from the port-1000 queue: what is queued first, then what
     * arrives, each streamed as a 'message' event. count 0 = until the timeout
     * or the client leaves (messages are then only streamed, not kept).
     */
    stdio_recv: async (p, ctx) => {
      const q = queue(d);
      const from = p.from === undefined ? undefined : await peerText(d, p.from);
      const { count, timeoutMs } = p;
      const kept: StdioMessage[] = [];
      let received = 0;
      const got = (m: StdioMessage): void => {
        received++;
        if (count > 0) kept.push(m);
        ctx.emit('message', m);
      };
      for (const m of q.take(from, count)) got(m);
      if (count === 0 || received < count) {
        ctx.emit('reading', { port: 1000, from: from ?? null });
        await readUntilDone(ctx, timeoutMs, (finish) =>
          q.read(from, (m) => {
            got(m);
            if (count > 0 && received >= count) finish();
          }),
        );
      }
      return { port: 1000, from: from ?? null, received, ...(count > 0 ? { messages: kept } : {}), queue: q.stats() };
    },
    stdio_status: () => queue(d).stats(),
  };
}
