// pilotctl update against a local node:http server standing in for the npm registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ROOT, run } from '../helpers/cluster.ts';
import { compareVersions } from '../../src/cli/commands/update.ts';
import { VERSION } from '../../src/daemon/version.ts';

function ctl(args: string[], env: NodeJS.ProcessEnv = {}) {
  return run([process.execPath, path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', 'update', ...args], env);
}

async function fakeRegistry(answer: (url: string) => [number, unknown]): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url!);
    const [status, body] = answer(req.url!);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, close: () => new Promise((r) => server.close(() => r())) };
}

test('compareVersions', () => {
  assert.equal(compareVersions('0.2.0', '0.1.9'), 1);
  assert.equal(compareVersions('0.1.0', '0.1.0'), 0);
  assert.equal(compareVersions('0.1.10', '0.1.9'), 1);
  assert.equal(compareVersions('1.0.0-rc.1', '1.0.0'), -1);
  assert.equal(compareVersions('v2.0.0', '1.99.99'), 1);
});

test('update: newer version available, up to date, not published, bad answer, offline', async () => {
  let latest = '99.0.0';
  const reg = await fakeRegistry((url) =>
    url === '/pilot-overlay/latest'
      ? [200, { name: 'pilot-overlay', version: latest }]
      : url.startsWith('/broken')
        ? [200, { nothing: 1 }]
        : [404, { error: 'Not found' }],
  );
  try {
    const newer = await ctl(['--registry-url', reg.url]);
    assert.equal(newer.code, 0, newer.stderr);
    assert.deepEqual(newer.json.data, {
      package: 'pilot-overlay',
      current: VERSION,
      latest: '99.0.0',
      updateAvailable: true,
      command: 'npm i -g pilot-overlay@99.0.0',
      registry: reg.url,
    });
    assert.deepEqual(reg.hits, ['/pilot-overlay/latest']);

    latest = VERSION;
    const same = await ctl([], { PILOT_NPM_REGISTRY: `${reg.url}/` });
    assert.equal(same.code, 0, same.stderr);
    assert.equal(same.json.data.updateAvailable, false);

    const human = await run([process.execPath, path.join(ROOT, 'src/cli/pilotctl.ts'), 'update', '--registry-url', reg.url]);
    assert.match(human.stdout, new RegExp(`pilot-overlay ${VERSION.replace(/\./g, '\\.')} is up to date`));

    const missing = await ctl(['--registry-url', `${reg.url}/nowhere`]);
    assert.equal(missing.code, 1);
    assert.equal(missing.json.code, 'NOT_FOUND');

    const broken = await ctl(['--registry-url', `${reg.url}/broken`]);
    assert.equal(broken.code, 1);
    assert.equal(broken.json.code, 'BAD_REQUEST');
  } finally {
    await reg.close();
  }
  // The server is closed: nothing listens on that port any more.
  const offline = await ctl(['--registry-url', reg.url]);
  assert.equal(offline.code, 1);
  assert.equal(offline.json.code, 'UNREACHABLE');
  assert.match(offline.json.message, /ECONNREFUSED/);
  assert.match(offline.json.hint, /offline/);
});
