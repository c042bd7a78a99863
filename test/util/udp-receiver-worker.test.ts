// The batched UDP reader (src/util/udp-receiver.ts) in a worker thread that ends with it open:
// in a child process, because the failure this guards against is a crash of the whole process
// (a separate file so udp-receiver.test.ts stays in the unit tier).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { loadRx } from '../../src/util/udp-receiver.ts';

const skip = loadRx() ? false : 'the addon is not built (scripts/native-build.js; see binding.gyp)';

test('a worker thread that ends with its reader open exits cleanly, and the port is free after', { skip }, () => {
  // the addon is unloaded with the worker's environment: a close callback pointing into it crashed the process
  const mod = new URL('../../src/util/udp-receiver.ts', import.meta.url).href;
  const worker = `
    const dgram = require('node:dgram');
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(mod)}).then(({ UdpBatchReceiver }) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const r = UdpBatchReceiver.start(s, () => {}, { log: console });
        // a second reader closed just before the worker exits: its handle's close is still pending then
        const s2 = dgram.createSocket('udp4');
        s2.bind(0, '127.0.0.1', () => {
          const r2 = UdpBatchReceiver.start(s2, () => {}, { log: console });
          parentPort.on('message', () => {
            r2.close();
            s2.close();
            process.exit(0);
          });
          parentPort.postMessage({ port: s.address().port, active: r !== undefined && r.active && r2 !== undefined && r2.active });
        });
      });
    });`;
  const main = `
    const { Worker } = require('node:worker_threads');
    const dgram = require('node:dgram');
    const w = new Worker(${JSON.stringify(worker)}, { eval: true });
    w.on('message', ({ port, active }) => {
      if (!active) { console.log('inactive'); process.exit(2); }
      const tx = dgram.createSocket('udp4');
      for (let i = 0; i < 20; i++) tx.send('x', port, '127.0.0.1');
      setTimeout(async () => {
        const gone = new Promise((res) => w.once('exit', res));
        w.postMessage('stop');
        await gone;
        tx.close();
        const again = dgram.createSocket('udp4');
        again.on('error', (e) => { console.log('rebind', e.code); process.exit(3); });
        again.bind(port, '127.0.0.1', () => { console.log('ok'); again.close(); });
      }, 100);
    });`;
  const r = spawnSync(process.execPath, ['-e', main], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.signal, null, `the process died of ${r.signal}`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.stdout.trim(), 'ok');
});
