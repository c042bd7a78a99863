// Test side of ns-udp-child.ts: UDP sockets that live in a network namespace.
// Every byte sent and received is counted per socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ns-udp-child.ts');

export class NsSocket extends EventEmitter {
  readonly id: number;
  port = 0;
  bytesIn = 0;
  packetsIn = 0;
  bytesOut = 0;
  packetsOut = 0;
  private readonly host: NsUdp;
  constructor(host: NsUdp, id: number) {
    super();
    this.host = host;
    this.id = id;
  }
  send(pkt: Buffer, host: string, port: number): void {
    this.bytesOut += pkt.length;
    this.packetsOut++;
    this.host.write({ op: 'send', id: this.id, host, port, b64: pkt.toString('base64') });
  }
}

export class NsUdp {
  private readonly proc: ChildProcess;
  private readonly socks = new Map<number, NsSocket>();
  private readonly waiting = new Map<number, { resolve: (s: NsSocket) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  constructor(ns: string) {
    this.proc = spawn('ip', ['netns', 'exec', ns, process.execPath, CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as { op: string; id: number; port?: number; from?: string; b64?: string; message?: string };
      const s = this.socks.get(m.id);
      if (m.op === 'bound' && s) {
        s.port = m.port!;
        this.waiting.get(m.id)?.resolve(s);
      } else if (m.op === 'error') {
        this.waiting.get(m.id)?.reject(new Error(m.message));
      } else if (m.op === 'msg' && s) {
        const pkt = Buffer.from(m.b64!, 'base64');
        s.bytesIn += pkt.length;
        s.packetsIn++;
        s.emit('message', pkt, m.from);
      }
    });
  }

  write(o: object): void {
    this.proc.stdin!.write(JSON.stringify(o) + '\n');
  }

  bind(host: string, port = 0): Promise<NsSocket> {
    const id = this.nextId++;
    const s = new NsSocket(this, id);
    this.socks.set(id, s);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.write({ op: 'bind', id, host, port });
    });
  }

  close(): void {
    this.proc.stdin!.end();
    this.proc.kill();
  }
}
