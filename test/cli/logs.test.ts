// pilotctl logs: the last lines of a real daemon's log, pretty or --json, a
// level filter, and -f following a log across size rotations (tail -F).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { lastLines } from '../../src/cli/commands/logs.ts';
import { fileLogger } from '../../src/util/logger.ts';

const PILOTCTL = path.join(ROOT, 'src/cli/pilotctl.ts');

test('lastLines reads back over rotated files, oldest first', () => {
  const dir = tmpDir('pilot-logs-');
  const file = path.join(dir, 'pilot.log');
  fs.writeFileSync(`${file}.2`, 'a\nb\n');
  fs.writeFileSync(`${file}.1`, 'c\nd\n');
  fs.writeFileSync(file, 'e\nf\n');
  assert.deepEqual(lastLines(file, 3), ['d', 'e', 'f']);
  assert.deepEqual(lastLines(file, 10), ['a', 'b', 'c', 'd', 'e', 'f']);
  assert.deepEqual(lastLines(file, 0), []);
  const big = path.join(dir, 'big.log');
  fs.writeFileSync(big, Array.from({ length: 50_000 }, (_, i) => `line ${i}`).join('\n') + '\n');
  assert.deepEqual(lastLines(big, 2), ['line 49998', 'line 49999']);
});

test('a real daemon: pretty lines, --level, --json; a home without a log says where the log is', async () => {
  const rdv = await startRendezvous();
  const work = tmpDir('pilot-logs-');
  const a = new Agent('a', work);
  try {
    await a.start(['--registry', rdv.addr, '--email', 'a@example.com']);
    const env = { PILOT_HOME: a.home, PILOT_SOCKET: a.socket };
    const pretty = await run([process.execPath, PILOTCTL, 'logs', '-n', '20'], env);
    assert.equal(pretty.code, 0, pretty.stderr);
    assert.match(pretty.stdout, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO {2}daemon running address=\S+ socket=\S+/m);
    assert.ok(!/"level":/.test(pretty.stdout), 'no raw JSON');

    const json = await run([process.execPath, PILOTCTL, '--json', 'logs', '-n', '20'], env);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(events.every((e) => e.status === 'ok' && e.event === true && typeof e.data.level === 'number'));
    assert.ok(events.some((e) => e.data.msg === 'daemon running'));

    const warn = await run([process.execPath, PILOTCTL, '--json', 'logs', '--level', 'warn'], env);
    assert.equal(warn.code, 0, warn.stderr);
    for (const l of warn.stdout.trim().split('\n').filter(Boolean)) assert.ok(JSON.parse(l).data.level >= 40);

    const bad = await run([process.execPath, PILOTCTL, '--json', 'logs', '--level', 'loud'], env);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.json.code, 'BAD_ARGUMENT');

    const none = await run([process.execPath, PILOTCTL, '--json', 'logs'], { PILOT_HOME: path.join(work, 'nobody') });
    assert.notEqual(none.code, 0);
    assert.equal(none.json.code, 'NOT_FOUND');
    assert.match(none.json.hint, /does not exist/);
  } finally {
    await a.stop();
    await rdv.kill();
  }
});

test('logs -f follows across rotations: every record once, in order', async () => {
  const home = tmpDir('pilot-logs-');
  const file = path.join(home, 'pilot.log');
  const log = fileLogger(file, 'info', { maxBytes: 4096, files: 6 });
  log.info({ i: -1 }, 'before');
  const child = spawn(process.execPath, [PILOTCTL, '--json', 'logs', '-f', '-n', '1'], {
    env: { ...process.env, PILOT_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  try {
    const seen = (): number[] =>
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).data.i as number);
    const until = async (ok: () => boolean, what: string): Promise<void> => {
      const end = Date.now() + 15_000;
      while (!ok()) {
        assert.ok(Date.now() < end, `${what}: got ${JSON.stringify(seen())} ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(() => seen().includes(-1), 'the last line before following');
    // 300 records of ~90 bytes: six rotations, often two or three between two polls of the follower (every 250 ms)
    for (let i = 0; i < 300; i++) {
      log.info({ i }, 'record');
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    await until(() => seen().includes(299), 'the last record');
    assert.ok(fs.existsSync(`${file}.2`), 'the log did rotate');
    assert.deepEqual(
      seen(),
      Array.from({ length: 301 }, (_, k) => k - 1),
    );
  } finally {
    child.kill('SIGINT');
  }
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 0, 'Ctrl-C ends -f cleanly');
});
