// The daemon as systemd runs it (the unit from `pilotctl service install`):
// stdout is the journal ($JOURNAL_STREAM names it; a file stands in for the
// journal socket here), so the log goes there with <N> priorities, not to pilot.log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, startRendezvous, tmpDir } from '../helpers/cluster.ts';

test('under the journal: <N>-prefixed records on stdout, no pilot.log', async () => {
  const rdv = await startRendezvous();
  const a = new Agent('a', tmpDir('pilot-journal-'));
  const out = path.join(a.home, '..', 'journal');
  try {
    const init = await a.ctl(['init', '--registry', rdv.addr, '--email', 'a@example.com']);
    assert.equal(init.code, 0, init.stderr);
    const fd = fs.openSync(out, 'w');
    const st = fs.fstatSync(fd);
    const proc = spawn(process.execPath, [path.join(ROOT, 'src/daemon/main.ts'), '--home', a.home], {
      stdio: ['ignore', fd, 'pipe'],
      env: { ...process.env, PILOT_HOME: a.home, PILOT_SOCKET: a.socket, JOURNAL_STREAM: `${st.dev}:${st.ino}` },
    });
    fs.closeSync(fd);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const end = Date.now() + 20_000;
    while (!/"ready":true/.test(fs.readFileSync(out, 'utf8'))) {
      assert.ok(Date.now() < end && proc.exitCode === null, `not ready: ${fs.readFileSync(out, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
    const ready = JSON.parse(lines.find((l) => l.startsWith('{"ready"'))!) as { log: string };
    assert.equal(ready.log, 'journal');
    assert.ok(
      lines.some((l) => /^<6>INFO {2}daemon running address=\S+/.test(l)),
      lines.join('\n'),
    );
    for (const l of lines.filter((x) => !x.startsWith('{"ready"'))) assert.match(l, /^<[2-7]>[A-Z]+ +\S/, 'every log line has a priority prefix');
    assert.ok(!fs.existsSync(path.join(a.home, 'pilot.log')), 'no file log of our own under the journal');
  } finally {
    await rdv.kill();
  }
});
