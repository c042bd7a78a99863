// The daemon's stdout logger as systemd runs it: $JOURNAL_STREAM names the
// stdout's device and inode (here a file standing in for the journal socket).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const LOGGER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/util/logger.ts');
const SCRIPT = `import(${JSON.stringify(LOGGER)}).then((m) => { const l = m.stdoutLogger(); l.warn({ reason: 'closed' }, 'uplink down'); l.debug('hidden'); });`;

function runWithStdout(env: (st: fs.Stats) => NodeJS.ProcessEnv): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-journal-')), 'out');
  const fd = fs.openSync(file, 'w');
  try {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], {
      stdio: ['ignore', fd, 'pipe'],
      env: { ...process.env, ...env(fs.fstatSync(fd)) },
    });
    assert.equal(r.status, 0, r.stderr.toString());
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(file, 'utf8');
}

test('stdout is the journal: <N>-prefixed lines journald turns into levels', () => {
  const out = runWithStdout((st) => ({ JOURNAL_STREAM: `${st.dev}:${st.ino}`, PILOT_LOG_LEVEL: 'info' }));
  assert.equal(out, '<4>WARN  uplink down reason=closed\n');
});

test('stdout is something else (a pipe to a container runtime, a file): pino NDJSON', () => {
  const out = runWithStdout(() => ({ JOURNAL_STREAM: '1:2', PILOT_LOG_LEVEL: 'info' }));
  const rec = JSON.parse(out.trim()) as { level: number; msg: string; reason: string };
  assert.equal(rec.level, 40);
  assert.equal(rec.msg, 'uplink down');
});

test('PILOT_LOG_LEVEL=debug lets debug records through', () => {
  const out = runWithStdout(() => ({ PILOT_LOG_LEVEL: 'debug' }));
  assert.match(out, /"msg":"hidden"/);
});
