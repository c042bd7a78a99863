// Runs inside a network namespace (spawned by ns-udp.ts): plain UDP sockets
// driven over stdin/stdout JSON lines, so a test process in the root
// namespace can send from (and receive at) addresses that live in the
// namespace - including a victim's address the attacker namespace spoofs.
import dgram from 'node:dgram';
import readline from 'node:readline';

const socks = new Map<number, dgram.Socket>();
const out = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line) as { op: string; id: number; host?: string; port?: number; b64?: string };
  if (m.op === 'bind') {
    const s = dgram.createSocket('udp4');
    s.on('error', (err) => out({ op: 'error', id: m.id, message: err.message }));
    s.on('message', (msg, r) => out({ op: 'msg', id: m.id, from: `${r.address}:${r.port}`, b64: msg.toString('base64') }));
    s.bind(m.port ?? 0, m.host, () => {
      socks.set(m.id, s);
      out({ op: 'bound', id: m.id, port: s.address().port });
    });
  } else if (m.op === 'send') {
    socks.get(m.id)?.send(Buffer.from(m.b64!, 'base64'), m.port!, m.host!);
  }
});
process.stdin.on('end', () => process.exit(0));
