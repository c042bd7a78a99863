// Plain TCP to the rendezvous: [u32 BE length][packet] frames, the framing the
// server speaks on its TCP port (src/wire/tcp-framing.ts).
import net from 'node:net';
import { encodeFrame, FrameDecoder } from '../wire/tcp-framing.ts';
import { TurnCork } from '../util/turn-cork.ts';
import type { Conn, ConnHandlers, ConnOptions } from './conn.ts';

export function openFramedConn(o: ConnOptions, h: ConnHandlers): Conn {
  const sock = net.connect({ host: o.host, port: o.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: o.keepaliveMs });
  const decoder = new FrameDecoder(o.maxPacket);
  // a turn's relayed packets leave in one writev, not one write() each
  const turn = new TurnCork(sock);
  let open = false;
  let reason: string | undefined;
  const timer = setTimeout(() => {
    reason ??= `connect timeout after ${o.connectTimeoutMs} ms`;
    sock.destroy();
  }, o.connectTimeoutMs);
  sock.on('connect', () => {
    clearTimeout(timer);
    open = true;
    h.onOpen();
  });
  sock.on('data', (chunk: Buffer) => {
    let frames: Buffer[];
    try {
      frames = decoder.push(chunk);
    } catch {
      // An oversized length desynchronises the stream for good: start over.
      h.onGarbage('oversized frame');
      reason ??= 'oversized frame from the rendezvous';
      sock.destroy();
      return;
    }
    for (const f of frames) {
      if (f.length === 0) h.onGarbage('empty frame');
      else h.onPacket(f);
      if (sock.destroyed) return; // a handler closed us
    }
  });
  sock.on('error', (err) => {
    reason ??= err.message;
  });
  sock.on('close', () => {
    clearTimeout(timer);
    h.onClose(reason ?? 'connection closed by the rendezvous');
  });
  return {
    send(pkt) {
      if (!open || sock.destroyed || !sock.writable || sock.writableLength > o.maxBacklog) return false;
      turn.beforeWrite();
      sock.write(encodeFrame(pkt));
      return true;
    },
    destroy(why) {
      reason ??= why;
      clearTimeout(timer);
      sock.destroy();
    },
  };
}
