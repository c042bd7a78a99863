// startNode() option errors name the option that failed (was: "check email, hostname and listen" for anything).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNode } from '../../src/sdk/index.ts';
import { PilotError } from '../../src/util/errors.ts';

test('a bad startNode option: BAD_ARGUMENT whose hint is about that option', async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-sdkopt-'));
  await assert.rejects(
    startNode({ home, registry: '127.0.0.1:9', email: 'a@example.com', uplink: 'quic' as 'udp', logger: 'silent' }),
    (e: unknown) =>
      e instanceof PilotError &&
      e.code === 'BAD_ARGUMENT' &&
      /^startNode\(\{ uplink \}\): /.test(e.message) &&
      e.hint === 'startNode({ uplink }) takes auto, udp, tcp, websocket or wss',
  );
  assert.ok(!fs.existsSync(path.join(home, 'config.json')), 'nothing written');
});
