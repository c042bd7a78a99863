// `pilotctl peers | head -1`: a reader that goes away must not crash pilotctl
// with an EPIPE stack trace; it stops quietly, like cat or ls. The reader here
// is gone before pilotctl writes (`| true`), so every write hits a closed pipe.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

const PILOTCTL = path.join(ROOT, 'src/cli/pilotctl.ts');
let rdv: Rendezvous;
let work: string;
let agent: Agent;

before(async () => {
  work = tmpDir('pilot-epipe-');
  rdv = await startRendezvous();
  agent = new Agent('epipe-agent', work);
  await agent.start(['--registry', rdv.addr, '--email', 'epipe@example.com', '--hostname', 'epipe-agent', '--listen', '127.0.0.1:0']);
});

after(async () => {
  await agent?.stop();
  await rdv?.kill();
  fs.rmSync(work, { recursive: true, force: true });
});

/** `pilotctl ARGS | READER` in bash; pilotctl's own exit status and stderr. */
async function piped(args: string[], reader: string): Promise<{ status: number; stderr: string }> {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = `${[process.execPath, PILOTCTL, ...args].map(q).join(' ')} 2>"$ERRFILE" | ${reader}; echo "status=\${PIPESTATUS[0]}"`;
  const errFile = path.join(work, `err-${Math.random().toString(16).slice(2)}`);
  const r = await run(['bash', '-c', cmd], { PILOT_HOME: agent.home, PILOT_SOCKET: agent.socket, ERRFILE: errFile }, 60_000);
  const m = /status=(\d+)/.exec(r.stdout);
  assert.ok(m, `no status: ${r.stdout} ${r.stderr}`);
  const stderr = fs.existsSync(errFile) ? fs.readFileSync(errFile, 'utf8') : '';
  return { status: Number(m[1]), stderr };
}

for (const [name, args] of [
  ['peers', ['peers']],
  ['peers --json', ['--json', 'peers']],
  ['info', ['info']],
  ['context (long output)', ['context']],
  ['--help', ['--help']],
] as const) {
  test(`pilotctl ${name} into a closed pipe exits 0 without a word`, async () => {
    const r = await piped([...args], 'true');
    assert.equal(r.stderr, '', `pilotctl complained on stderr:\n${r.stderr}`);
    assert.equal(r.status, 0);
  });
}

test('pilotctl peers | head -1, as written, still prints its first line', async () => {
  const r = await run(
    ['bash', '-c', `set -o pipefail; '${process.execPath}' '${PILOTCTL}' peers | head -1`],
    { PILOT_HOME: agent.home, PILOT_SOCKET: agent.socket },
    60_000,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(r.stdout.split('\n').filter(Boolean).length, 1);
});
