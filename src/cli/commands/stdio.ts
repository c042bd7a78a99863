// pilotctl connect, recv and listen: text and datagrams on virtual ports.
// Port 1000 is the stdio service (src/services/stdio.ts): `connect <peer>`
// sends lines into the peer's queue (stdin, or one --message) and prints the
// lines that peer sends us; `recv 1000` takes lines from our queue. Any other
// port: connect is a raw stream (stdin -> peer, peer -> stdout), recv and
// listen print datagrams.
import type { Command } from 'commander';
import { IpcClient, openPipe } from '../../ipc/client.ts';
import { parsePort } from '../../wire/address.ts';
import { PilotError } from '../../util/errors.ts';
import { parseStdioAnswer as stdioAnswer } from '../../services/stdio.ts';
import { line, ok, parseCount, parseDuration, type OutputOptions } from '../output.ts';
import type { RunWrapper } from '../action.ts';
import type { RecvDatagram as Datagram, StdioMessage } from '../../ipc/api.ts';

const STDIO_PORT = 1000;

/** Text from a peer, safe for a terminal: control characters (escape sequences!) shown as \xNN. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function messageText(m: StdioMessage): string {
  const body = m.encoding === 'base64' ? `[${m.bytes} bytes, not UTF-8] base64:${m.data}` : printable(m.data);
  return m.truncated ? `${body} [truncated at ${m.bytes} bytes]` : body;
}

export function registerStdioCommands(program: Command, run: RunWrapper): void {
  program
    .command('connect <target> [port]')
    .description('open a stream to a virtual port (default 1000, stdio): stdin lines to the peer, its lines to stdout; --message sends one and exits')
    .option('--message <text>', 'send this, print the reply (port 1000: the confirmation) and exit')
    .option('--timeout <d>', 'with --message: how long to wait for the reply', '5s')
    .action(
      run(async (_g, out, client, target: string, portText: string | undefined, o: { message?: string; timeout: string }) => {
        const port = parsePort(portText ?? STDIO_PORT);
        if (o.message === undefined) return interactive(out, client(), target, port);
        const r = await client().call('connect', {
          target,
          port,
          message: o.message,
          timeoutMs: parseDuration(o.timeout, 5000),
        });
        if (port !== STDIO_PORT) return ok(out, r, () => String(r.reply));
        const a = stdioAnswer(r.reply);
        ok(
          out,
          { ...r, ...a },
          () => `sent ${a.lines} line(s) to ${target} (port ${STDIO_PORT})${a.truncated ? `, ${a.truncated} cut at the peer's line limit` : ''}`,
        );
      }),
    );

  program
    .command('recv <port>')
    .description(
      'port 1000: take text lines from the stdio queue (default: stream until --timeout or Ctrl-C); other ports: receive datagrams (default --count 1)',
    )
    .option('--count <n>', 'stop after N lines / datagrams (0 = until the timeout)')
    .option('--timeout <d>', 'stop after this long (default: wait forever)')
    .option('--from <target>', 'port 1000: only lines from this peer')
    .action(
      run(async (_g, out, client, portText: string, o: { count?: string; timeout?: string; from?: string }) => {
        const port = parsePort(portText);
        const timeoutMs = parseDuration(o.timeout, 0);
        if (port === STDIO_PORT) {
          const count = parseCount(o.count, 0);
          const r = await client().call('stdio_recv', { count, timeoutMs, ...(o.from ? { from: o.from } : {}) }, (event, data) => {
            if (event !== 'message') return; // reading, keepalive
            line(out, data, `${data.from}  ${messageText(data)}`);
          });
          if (out.json) ok(out, r, () => undefined);
          if (count > 0 && r.received < count)
            throw new PilotError('TIMEOUT', `${r.received} of ${count} lines before the timeout`, 'is the sender trusted and sending to port 1000?');
          return;
        }
        if (o.from) throw new PilotError('BAD_ARGUMENT', '--from works on port 1000 only');
        const count = parseCount(o.count, 1);
        const r = await client().call('recv', { port, count, timeoutMs }, (e, d) => e === 'datagram' && printDatagram(out, d));
        if (out.json) ok(out, { port, received: r.received }, () => undefined);
        if (r.received === 0) throw new PilotError('TIMEOUT', `no datagram on port ${port}`, 'is the sender trusted and using the right port?');
      }),
    );

  program
    .command('listen <port>')
    .description('print datagrams arriving on a virtual port as they come (NDJSON with --json), until --count, --timeout or Ctrl-C')
    .option('--count <n>', 'stop after N datagrams (default: never)')
    .option('--timeout <d>', 'stop after this long (default: wait forever)')
    .action(
      run(async (_g, out, client, portText: string, o: { count?: string; timeout?: string }) => {
        const port = parsePort(portText);
        const count = parseCount(o.count, 0);
        const r = await client().call('recv', { port, count, timeoutMs: parseDuration(o.timeout, 0) }, (e, d) => e === 'datagram' && printDatagram(out, d));
        if (out.json) ok(out, { port, received: r.received }, () => undefined);
        if (count > 0 && r.received < count)
          throw new PilotError('TIMEOUT', `${r.received} of ${count} datagrams before the timeout`, 'is the sender trusted and using the right port?');
      }),
    );
}

function printDatagram(out: OutputOptions, m: Datagram): void {
  line(out, m, `${m.from}:${m.srcPort}  ${printable(m.data)}`);
}

/**
 * stdin -> the peer's port, until stdin ends; then wait for the peer to close.
 * Port 1000: the peer's lines to us come from our own queue (a second IPC
 * request takes the lines of this one peer); any other port: its bytes go to stdout.
 */
async function interactive(out: OutputOptions, client: IpcClient, target: string, port: number): Promise<void> {
  const { socket } = await openPipe('dial', { target, port }, client.path);
  socket.on('error', () => {});
  let reader: IpcClient | undefined;
  let leaving = false;
  if (port === STDIO_PORT) {
    reader = new IpcClient(client.path);
    // our stdio service may be off: we can still send, just not hear back
    void reader
      .call('stdio_recv', { from: target, count: 0 }, (event, data) => {
        if (event === 'message') line(out, data, messageText(data));
      })
      .catch((err: Error) => {
        if (!leaving && !out.json) process.stderr.write(`(not showing ${target}'s lines: ${err.message})\n`);
      });
  }
  let sent = 0;
  const stdin = process.stdin;
  const count = (c: Buffer): void => {
    sent += c.length;
  };
  stdin.on('data', count);
  stdin.pipe(socket);
  const replies: Buffer[] = [];
  socket.on('data', (c: Buffer) => {
    if (port === STDIO_PORT) replies.push(c);
    else process.stdout.write(c);
  });
  socket.resume(); // openPipe hands the socket over paused
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  stdin.off('data', count);
  stdin.unpipe(socket);
  stdin.destroy(); // a TTY would keep the process alive
  leaving = true;
  reader?.close();
  if (port !== STDIO_PORT) {
    if (out.json) ok(out, { target, port, sent }, () => undefined);
    return;
  }
  const a = stdioAnswer(Buffer.concat(replies).toString('utf8'));
  ok(out, { target, port, sent, ...a }, () => undefined);
  if (!out.json) process.stderr.write(`sent ${a.lines} line(s) to ${target}${a.truncated ? `, ${a.truncated} cut at the peer's line limit` : ''}\n`);
}
