// Start-up cost (issue 17): pilotctl and the daemon load only what the command
// or the daemon's configuration needs. Each check runs the real programs with a
// preloaded hook that records every module they load (test/helpers/record-imports.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, startRendezvous, tmpDir } from '../helpers/cluster.ts';

const HOOK = path.join(ROOT, 'test/helpers/record-imports.ts');
const CTL = path.join(ROOT, 'src/cli/pilotctl.ts');

/** Modules a process loaded, per pid, from the hook's output directory. */
function recorded(dir: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const f of fs.readdirSync(dir)) out.set(Number(path.basename(f, '.json')), JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
  return out;
}

/** The loaded modules that match one of `heavy` (a package in node_modules or a node: builtin). */
function offenders(urls: string[], heavy: string[]): string[] {
  return urls.filter((u) => heavy.some((h) => (h.startsWith('node:') ? u === h : u.includes(`/node_modules/${h}/`))));
}

test('pilotctl info loads neither a schema library, the HTTP stack, prom-client nor ws', { timeout: 60_000 }, () => {
  const dir = tmpDir('pilot-imports-');
  const home = tmpDir('pilot-home-');
  const r = spawnSync(process.execPath, ['--import', HOOK, CTL, '--json', 'info'], {
    env: { ...process.env, PILOT_RECORD_IMPORTS: dir, PILOT_HOME: home, PILOT_SOCKET: path.join(home, 'none.sock') },
    encoding: 'utf8',
  });
  assert.equal(r.status, 1, r.stderr); // no daemon: NO_DAEMON, after all imports
  assert.match(r.stderr, /NO_DAEMON/);
  const [urls] = [...recorded(dir).values()];
  assert.ok(urls && urls.length > 0, 'the hook recorded the imports');
  assert.deepEqual(offenders(urls, ['valibot', 'zod', 'prom-client', 'ws', 'undici', 'node:http']), []);
  // The commands that need the heavy modules still work: help lists them, `init` runs.
  const help = spawnSync(process.execPath, [CTL, '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, /send-message/);
  assert.match(help.stdout, /\binit\b/);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(home, { recursive: true, force: true });
});

test('a daemon without --metrics or a WebSocket uplink loads neither zod, prom-client, ws, node:http, the gateway nor the policy parser', {
  timeout: 60_000,
}, async (t) => {
  const dir = tmpDir('pilot-imports-');
  const work = tmpDir();
  const rdv = await startRendezvous();
  t.after(() => rdv.kill());
  const a = new Agent('alpha', work);
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      HOOK,
      CTL,
      '--json',
      'daemon',
      'start',
      '--registry',
      rdv.addr,
      '--email',
      'a@example.com',
      '--hostname',
      'imports-alpha',
      '--listen',
      '127.0.0.1:0',
    ],
    { env: { ...process.env, PILOT_RECORD_IMPORTS: dir, PILOT_HOME: a.home, PILOT_SOCKET: a.socket }, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const pid = JSON.parse(r.stdout.trim().split('\n').pop()!).data.pid as number;
  await a.stop(); // the daemon writes its list on exit
  for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, `${pid}.json`)); i++) await new Promise((res) => setTimeout(res, 50));
  const urls = recorded(dir).get(pid);
  assert.ok(
    urls?.some((u) => u.endsWith('/daemon/daemon.ts')),
    'the daemon recorded its imports',
  );
  assert.deepEqual(
    // zod: ~17 MiB of RSS, left for valibot (issue 17); only the MCP SDK, which the daemon never loads, needs it
    offenders(urls ?? [], ['zod', 'prom-client', '@opentelemetry/api', 'ws', 'undici', 'better-sqlite3', 'pg', '@modelcontextprotocol/sdk', 'node:http']),
    [],
  );
  // the gateway and expose load on first use (or when state was saved), and the policy parser on the first policy
  assert.deepEqual(
    (urls ?? []).filter((u) => /\/gateway\/(service|gateway|expose)\.ts$/.test(u) || u.includes('/node_modules/jsonc-parser/')),
    [],
  );
  fs.rmSync(dir, { recursive: true, force: true });
});
