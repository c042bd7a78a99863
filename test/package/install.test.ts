// What users download and run, measured on the packed tarball (the shared pack
// of test/helpers/package.ts) installed with the machine's npm on a supported
// Node (USER_PATH), into fresh directories:
//  - an SDK user's `npm i <tgz>`: under 40 MB on disk, no node_modules/.bin/node
//    (a consumer's npm scripts keep their Node), none of the role-specific
//    packages (stores, MCP SDK, prom-client), no EBADENGINE or install-script
//    warnings; the SDK imports, and MCP without its SDK is a coded error;
//  - `npm i -g --prefix`: under 60 MB; pilot-rendezvous without better-sqlite3
//    says which command installs it; with it, the pid a shell holds ($!) is the
//    server: SIGTERM frees its port (one process, no launcher in front);
//  - the foreground daemon as a service unit runs it (compiled entry, user's
//    Node): SIGTERM to that pid ends it and frees its UDP port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { run, tmpDir } from '../helpers/cluster.ts';
import { npmEnv, packTarball, USER_PATH } from '../helpers/package.ts';

const MB = 1024 * 1024;
/** What `npm i` must not bring to an SDK/CLI/daemon user (optional peer dependencies). */
const ROLE_PACKAGES = ['better-sqlite3', 'pg', '@modelcontextprotocol/sdk', 'prom-client', 'node'];

/** Bytes on disk under `dir`, as du counts them (allocated blocks, each inode once). */
function diskUsage(dir: string, seen = new Set<string>()): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    const st = fs.lstatSync(p);
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    total += st.blocks * 512;
    if (e.isDirectory()) total += diskUsage(p, seen);
  }
  return total + fs.lstatSync(dir).blocks * 512;
}

/** The largest packages under node_modules, for a failure message that says what grew. */
function largest(modules: string): string {
  const rows: [string, number][] = [];
  for (const name of fs.readdirSync(modules)) {
    if (name.startsWith('.')) continue;
    const dirs = name.startsWith('@') ? fs.readdirSync(path.join(modules, name)).map((n) => `${name}/${n}`) : [name];
    for (const d of dirs) rows.push([d, diskUsage(path.join(modules, d))]);
  }
  return rows
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([n, b]) => `${(b / MB).toFixed(1)} MB ${n}`)
    .join(', ');
}

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv): string {
  const r = spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.status, 0, `npm ${args.join(' ')}: ${r.error?.message ?? ''}\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}\n${r.stderr}`;
}

/** npm's complaints a user should never see for this package on a supported Node. */
function assertQuietInstall(out: string, what: string): void {
  assert.doesNotMatch(out, /EBADENGINE|install-scripts|allowScripts|deprecated/i, `${what} printed warnings:\n${out}`);
}

/** Resolves with the first stdout line matching `re` (the process must not exit first). */
function waitForLine(proc: ChildProcess, re: RegExp, ms: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms:\n${out}\n${err}`)), ms);
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before ${re}:\n${out}\n${err}`));
    });
  });
}

function exited(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

/** The pids whose parent is `pid` (Linux /proc): a launcher would show its real server here. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function tcpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test('npm i of the packed tarball: small, no bundled Node, split by role, one process per server', { timeout: 300_000 }, async () => {
  const work = tmpDir('pilot-install-');
  const home = path.join(work, 'home');
  fs.mkdirSync(home);
  const env = npmEnv(home);
  const procs: ChildProcess[] = [];
  try {
    const tgz = packTarball(work, env);

    // 1. An SDK user's project.
    const proj = path.join(work, 'project');
    fs.mkdirSync(proj);
    fs.writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'sdk-user', version: '1.0.0', private: true, type: 'module' }));
    assertQuietInstall(npm(['install', '--no-audit', '--no-fund', tgz], proj, env), 'npm i <tgz>');
    const modules = path.join(proj, 'node_modules');
    const projBytes = diskUsage(modules);
    process.stdout.write(`# npm i <tgz> (SDK user): ${(projBytes / MB).toFixed(1)} MB on disk\n`);
    assert.ok(projBytes < 40 * MB, `SDK install is ${(projBytes / MB).toFixed(1)} MB (limit 40); largest: ${largest(modules)}`);
    assert.equal(fs.existsSync(path.join(modules, '.bin', 'node')), false, 'no node_modules/.bin/node in the consumer');
    for (const pkg of ROLE_PACKAGES) assert.equal(fs.existsSync(path.join(modules, pkg)), false, `${pkg} is not installed for an SDK user`);
    // Declaration maps lead an editor from the .d.ts to the shipped TypeScript source.
    const installed = path.join(modules, 'pilot-overlay');
    const map = JSON.parse(fs.readFileSync(path.join(installed, 'dist', 'sdk', 'index.d.ts.map'), 'utf8')) as { sources: string[] };
    for (const src of map.sources) assert.ok(fs.existsSync(path.join(installed, 'dist', 'sdk', src)), `declaration map source ${src} is shipped`);
    assert.ok(fs.existsSync(path.join(installed, 'dist', 'rendezvous', 'dashboard', 'index.html')), 'the dashboard assets are beside the compiled code');
    const sdk = spawnSync(
      'node',
      [
        '--input-type=module',
        '-e',
        `import { startNode, PilotMcpTransport } from 'pilot-overlay/sdk';
         import { PassThrough } from 'node:stream';
         let mcp;
         try { await new PilotMcpTransport(new PassThrough()).start(); } catch (e) { mcp = { code: e.code, hint: e.hint }; }
         console.log(JSON.stringify({ startNode: typeof startNode, mcp }));`,
      ],
      { cwd: proj, env: { HOME: home, PATH: USER_PATH }, encoding: 'utf8' },
    );
    assert.equal(sdk.status, 0, sdk.stderr);
    const got = JSON.parse(sdk.stdout);
    assert.equal(got.startNode, 'function');
    assert.equal(got.mcp.code, 'MISSING_DEPENDENCY');
    assert.equal(got.mcp.hint, `install it: npm i @modelcontextprotocol/sdk@1 (in ${fs.realpathSync(proj)})`);

    // 2. A global install (CLI, daemon, rendezvous).
    const prefix = path.join(work, 'prefix');
    assertQuietInstall(npm(['install', '-g', '--no-audit', '--no-fund', '--prefix', prefix, tgz], work, env), 'npm i -g <tgz>');
    const globalBytes = diskUsage(prefix);
    process.stdout.write(`# npm i -g <tgz>: ${(globalBytes / MB).toFixed(1)} MB on disk\n`);
    assert.ok(
      globalBytes < 60 * MB,
      `global install is ${(globalBytes / MB).toFixed(1)} MB (limit 60); largest: ${largest(path.join(prefix, 'lib', 'node_modules', 'pilot-overlay', 'node_modules'))}`,
    );
    const bin = path.join(prefix, 'bin');
    const runEnv = { HOME: home, PATH: `${bin}:${USER_PATH}` };

    const data = path.join(work, 'rdv');
    const missing = await run([path.join(bin, 'pilot-rendezvous'), '--listen', '127.0.0.1:0', '--data', data], runEnv, 30_000);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /MISSING_DEPENDENCY/);
    assert.match(missing.stderr, new RegExp(`npm i -g --prefix ${prefix} better-sqlite3@\\d+`), missing.stderr);

    // The rendezvous's store, installed as the hint says (beside the package).
    npm(['install', '-g', '--no-audit', '--no-fund', '--prefix', prefix, 'better-sqlite3@13'], work, env);
    const rdv = spawn(path.join(bin, 'pilot-rendezvous'), ['--listen', '127.0.0.1:0', '--data', data, '--log-level', 'warn'], {
      env: runEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.push(rdv);
    const port = Number((await waitForLine(rdv, /listening udp\+tcp 127\.0\.0\.1:(\d+)/, 20_000))[1]);
    const registry = `127.0.0.1:${port}`;
    assert.deepEqual(childrenOf(rdv.pid!), [], 'the pid the shell holds is the server (no child process)');

    // 3. A foreground daemon, as the unit `pilotctl service install` writes runs it.
    const pilotHome = path.join(work, 'pilot-home');
    const initEnv = { ...runEnv, PILOT_HOME: pilotHome, PILOT_SOCKET: path.join(work, 'p.sock') };
    const daemonPort = await freeUdpPort();
    const init = await run(
      [path.join(bin, 'pilotctl'), '--json', 'init', '--registry', registry, '--email', 'fg@example.com', '--listen', `127.0.0.1:${daemonPort}`],
      initEnv,
    );
    assert.equal(init.code, 0, init.stderr);
    const svc = await run([path.join(bin, 'pilotctl'), '--json', 'service', 'install'], initEnv); // no systemd here: writes the unit
    const unitFile = path.join(home, '.config/systemd/user/pilot-daemon.service');
    assert.ok(fs.existsSync(unitFile), `no unit written: ${svc.stderr}`);
    const execStart = /^ExecStart=(.*)$/m.exec(fs.readFileSync(unitFile, 'utf8'))![1]!.split(' ');
    const pkgDir = fs.realpathSync(path.join(prefix, 'lib', 'node_modules', 'pilot-overlay'));
    assert.ok(execStart.includes(path.join(pkgDir, 'dist', 'daemon', 'main.js')), `the unit runs the compiled entry: ${execStart.join(' ')}`);
    const daemon = spawn(execStart[0]!, execStart.slice(1), { env: initEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(daemon);
    await waitForLine(daemon, /"ready":true/, 30_000);
    assert.deepEqual(childrenOf(daemon.pid!), [], 'the foreground daemon is one process');
    const info = await run([path.join(bin, 'pilotctl'), '--json', 'info'], initEnv);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(info.json.data.pid, daemon.pid, 'the daemon answering is the pid we hold');
    assert.equal(await udpPortFree(daemonPort), false, 'the daemon holds its UDP port');

    // 4. kill $!: each pid is the whole server, so the ports are free once it exits.
    daemon.kill('SIGTERM');
    assert.equal((await exited(daemon)).code, 0, 'the daemon stops cleanly on SIGTERM');
    assert.ok(await udpPortFree(daemonPort), `daemon UDP port ${daemonPort} still bound after SIGTERM`);
    rdv.kill('SIGTERM');
    await exited(rdv);
    assert.ok(await tcpPortFree(port), `rendezvous TCP port ${port} still bound after SIGTERM`);
    assert.ok(await udpPortFree(port), `rendezvous UDP port ${port} still bound after SIGTERM`);
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    fs.rmSync(work, { recursive: true, force: true });
  }
});
