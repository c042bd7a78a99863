// The serving side: `pilotctl expose 80 127.0.0.1:8080` forwards every stream
// that arrives on virtual port 80 to a local TCP service. Only trusted peers'
// streams reach the listener (the daemon refuses the rest before). Saved in
// $PILOT_HOME/expose.json and restored when the daemon starts.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import * as v from 'valibot';
import { asPilotError, PilotError } from '../util/errors.ts';
import { int } from '../util/schema.ts';
import { formatHostPort, parseHostPort } from '../util/hostport.ts';
import { formatAddress, type Address } from '../wire/address.ts';
import type { OverlayHost } from './host.ts';
import { readState, writeState } from './state-file.ts';
import { splice } from './splice.ts';

import { EXPOSE_FILE } from './state-names.ts';

export { EXPOSE_FILE };

const StateSchema = v.object({
  version: v.literal(1),
  exposes: v.array(v.object({ port: int(0, 65535), target: v.string() })),
});
type State = v.InferOutput<typeof StateSchema>;

interface Entry {
  port: number;
  target: { host: string; port: number };
  off: (() => void) | null;
  error: string | null;
  conns: Set<net.Socket>;
  stats: { connections: number; refused: number; lastFrom: string | null };
}

export interface ExposeInfo {
  port: number;
  target: string;
  listening: boolean;
  error: string | null;
  connections: number;
  active: number;
  refused: number;
  lastFrom: string | null;
}

export class Expose {
  private readonly host: OverlayHost;
  private readonly entries = new Map<number, Entry>();

  constructor(host: OverlayHost) {
    this.host = host;
  }

  add(port: number, targetText: string): ExposeInfo {
    const target = parseHostPort(targetText);
    if (target.port === 0) throw new PilotError('BAD_ARGUMENT', `no port in ${JSON.stringify(targetText)}`, 'e.g. pilotctl expose 80 127.0.0.1:8080');
    if (this.entries.has(port))
      throw new PilotError(
        'BAD_ARGUMENT',
        `virtual port ${port} is already exposed (to ${formatHostPort(this.entries.get(port)!.target)})`,
        `remove it first: pilotctl expose remove ${port}`,
      );
    const e: Entry = { port, target, off: null, error: null, conns: new Set(), stats: { connections: 0, refused: 0, lastFrom: null } };
    this.open(e);
    this.entries.set(port, e);
    this.persist();
    return this.info(e);
  }

  remove(port: number): ExposeInfo {
    const e = this.entries.get(port);
    if (!e) throw new PilotError('NOT_FOUND', `virtual port ${port} is not exposed`, 'see: pilotctl expose list');
    this.shut(e);
    this.entries.delete(port);
    this.persist();
    return { ...this.info(e), listening: false };
  }

  list(): ExposeInfo[] {
    return [...this.entries.values()].map((e) => this.info(e));
  }

  /** Take the virtual port (throws if something else has it). */
  private open(e: Entry): void {
    e.off = this.host.ports.listen(e.port, (stream, from) => this.onStream(e, stream, from));
    e.error = null;
  }

  private shut(e: Entry): void {
    e.off?.();
    e.off = null;
    for (const c of e.conns) c.resetAndDestroy();
  }

  private onStream(e: Entry, stream: Duplex, from: Address): void {
    e.stats.connections++;
    e.stats.lastFrom = formatAddress(from);
    const sock = net.connect({ host: e.target.host, port: e.target.port, allowHalfOpen: true });
    e.conns.add(sock);
    sock.setNoDelay(true);
    let connected = false;
    stream.on('error', () => {}); // reset by the peer before the local connection is up; splice takes over after
    stream.once('close', () => {
      if (!connected) sock.destroy();
    });
    sock.once('connect', () => {
      connected = true;
      if (stream.destroyed) sock.resetAndDestroy();
      else splice(sock, stream);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) return;
      // The local service is down: the remote side sees "connection refused", its TCP client a RST.
      e.stats.refused++;
      this.host.log.warn({ port: e.port, target: formatHostPort(e.target), err: err.code ?? err.message }, 'expose: local service unreachable');
      stream.destroy(new PilotError('CONNECTION_REFUSED', `local service ${formatHostPort(e.target)} refused (${err.code ?? err.message})`));
    });
    sock.on('close', () => e.conns.delete(sock));
  }

  private info(e: Entry): ExposeInfo {
    return {
      port: e.port,
      target: formatHostPort(e.target),
      listening: e.off !== null,
      error: e.error,
      connections: e.stats.connections,
      active: e.conns.size,
      refused: e.stats.refused,
      lastFrom: e.stats.lastFrom,
    };
  }

  private persist(): void {
    const state: State = { version: 1, exposes: [...this.entries.values()].map((e) => ({ port: e.port, target: formatHostPort(e.target) })) };
    writeState(this.host.home, EXPOSE_FILE, state);
  }

  /** Daemon start: take the saved virtual ports again. */
  restore(): void {
    const { state, error } = readState<State>(this.host.home, EXPOSE_FILE, StateSchema, { version: 1, exposes: [] });
    if (error) this.host.log.warn({ err: error }, 'expose state ignored');
    for (const saved of state.exposes) {
      let target: { host: string; port: number };
      try {
        target = parseHostPort(saved.target);
      } catch {
        this.host.log.warn({ saved }, 'expose entry ignored');
        continue;
      }
      const e: Entry = { port: saved.port, target, off: null, error: null, conns: new Set(), stats: { connections: 0, refused: 0, lastFrom: null } };
      try {
        this.open(e);
        this.host.log.info({ port: e.port, target: saved.target }, 'expose restored');
      } catch (err) {
        e.error = asPilotError(err).message;
        this.host.log.warn({ port: e.port, err: e.error }, 'expose not restored');
      }
      this.entries.set(e.port, e);
    }
  }

  close(): void {
    for (const e of this.entries.values()) this.shut(e);
    this.entries.clear();
  }
}
