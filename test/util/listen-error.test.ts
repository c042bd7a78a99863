import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { listenError } from '../../src/util/listen-error.ts';
import { PilotError } from '../../src/util/errors.ts';
import { startMetricsHttp } from '../../src/metrics/metrics-http.ts';
import { Registry } from 'prom-client';

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

test('EADDRINUSE, EACCES, EADDRNOTAVAIL become coded errors naming the address and the flag', () => {
  const busy = listenError(errno('EADDRINUSE'), 'udp', '0.0.0.0', 4000, '--listen') as PilotError;
  assert.equal(busy.code, 'ADDRESS_IN_USE');
  assert.equal(busy.message, 'udp 0.0.0.0:4000 is already in use by another process');
  assert.match(busy.hint ?? '', /pick another --listen HOST:PORT \(port 0 = any free port\), or stop the process holding port 4000 \(ss -ulpn 'sport = :4000'/);
  const low = listenError(errno('EACCES'), 'http', '0.0.0.0', 80, '--metrics') as PilotError;
  assert.equal(low.code, 'PERMISSION_DENIED');
  assert.match(low.hint ?? '', /below 1024 .*--metrics/);
  const notHere = listenError(errno('EADDRNOTAVAIL'), 'tcp', '192.0.2.7', 9000, '--listen') as PilotError;
  assert.equal(notHere.code, 'BAD_ARGUMENT');
  const other = errno('EMFILE');
  assert.equal(listenError(other, 'tcp', 'h', 1, '--listen'), other, 'other errors pass through');
});

test('a busy --metrics port, for real: ADDRESS_IN_USE', async () => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  try {
    await assert.rejects(
      startMetricsHttp({ host: '127.0.0.1', port }, new Registry(), () => {}),
      (e: unknown) => e instanceof PilotError && e.code === 'ADDRESS_IN_USE' && /--metrics/.test(e.hint ?? ''),
    );
  } finally {
    srv.close();
  }
});
