import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { envLogLevel, envRotation, fileLogger, parseSize, rotatedPaths } from '../../src/util/logger.ts';
import { PilotError } from '../../src/util/errors.ts';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-log-'));

async function settle(log: ReturnType<typeof fileLogger>): Promise<void> {
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  await new Promise((r) => setTimeout(r, 50));
}

test('the file log rotates by size: pilot.log, .1, .2 kept, older dropped, nothing lost in between', async () => {
  const dir = tmp();
  const file = path.join(dir, 'pilot.log');
  const log = fileLogger(file, 'info', { maxBytes: 8192, files: 2 });
  for (let i = 0; i < 400; i++) {
    log.info({ i, pad: 'x'.repeat(40) }, 'record');
    if (i % 50 === 0) await new Promise((r) => setImmediate(r)); // let SonicBoom write (and reopen) as a daemon would
  }
  await settle(log);
  const [live, one, two] = rotatedPaths(file, 2) as [string, string, string];
  for (const p of [live, one, two]) assert.ok(fs.existsSync(p), `${path.basename(p)} exists`);
  assert.ok(!fs.existsSync(`${file}.3`), 'only two rotated files are kept');
  for (const p of [live, one, two]) assert.ok(fs.statSync(p).size <= 8192, `${path.basename(p)} stays under the cap: ${fs.statSync(p).size}`);
  // oldest to newest, the kept records are one unbroken run ending with the last one written
  const ids = [two, one, live].flatMap((p) =>
    fs
      .readFileSync(p, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { i: number }).i),
  );
  assert.equal(ids[ids.length - 1], 399);
  for (let k = 1; k < ids.length; k++) assert.equal(ids[k], ids[k - 1]! + 1, 'no record lost or reordered across a rotation');
});

test('a restart appends to the existing log and counts its size toward the cap', async () => {
  const dir = tmp();
  const file = path.join(dir, 'pilot.log');
  fs.writeFileSync(file, `${'{"level":30,"msg":"old"}\n'.repeat(400)}`);
  const log = fileLogger(file, 'info', { maxBytes: 8192, files: 1 });
  log.info('new');
  await settle(log);
  assert.ok(fs.existsSync(`${file}.1`), 'the oversized old log was rotated away at the first write');
  assert.match(fs.readFileSync(file, 'utf8'), /"msg":"new"/);
});

test('files: 0 truncates in place instead of keeping rotated files', async () => {
  const dir = tmp();
  const file = path.join(dir, 'pilot.log');
  const log = fileLogger(file, 'info', { maxBytes: 4096, files: 0 });
  for (let i = 0; i < 200; i++) {
    log.info({ i }, 'record');
    if (i % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  await settle(log);
  assert.deepEqual(fs.readdirSync(dir), ['pilot.log']);
  assert.ok(fs.statSync(file).size <= 4096);
});

test('PILOT_LOG_LEVEL: a typo is a coded error naming the variable, not a crash inside pino', () => {
  assert.equal(envLogLevel({}), 'info');
  assert.equal(envLogLevel({ PILOT_LOG_LEVEL: 'debug' }), 'debug');
  assert.throws(
    () => envLogLevel({ PILOT_LOG_LEVEL: 'verbose' }),
    (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT' && /PILOT_LOG_LEVEL/.test(e.message) && /trace, debug/.test(e.hint ?? ''),
  );
});

test('PILOT_LOG_MAX_SIZE and PILOT_LOG_FILES set the rotation; defaults 10M x 3', () => {
  assert.deepEqual(envRotation({}), { maxBytes: 10 * 1024 * 1024, files: 3 });
  assert.deepEqual(envRotation({ PILOT_LOG_MAX_SIZE: '512k', PILOT_LOG_FILES: '5' }), { maxBytes: 512 * 1024, files: 5 });
  assert.equal(parseSize('1G'), 1024 ** 3);
  assert.equal(parseSize('20MB'), 20 * 1024 ** 2);
  assert.equal(parseSize('4096'), 4096);
  assert.throws(() => envRotation({ PILOT_LOG_MAX_SIZE: 'lots' }), /invalid size/);
  assert.throws(() => envRotation({ PILOT_LOG_FILES: '-1' }), /PILOT_LOG_FILES/);
});
