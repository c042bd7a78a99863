// The package as users get it: `npm pack` of this checkout (prepack builds
// dist/), installed with the machine's own npm into a clean HOME. Shared by the
// global-install test and the SDK package-consumer test, so packing lives here.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './cluster.ts';

/** The machine's PATH without this checkout's node_modules/.bin (no pinned Node 24: Node 20 here). */
export const SYSTEM_PATH = (process.env.PATH ?? '')
  .split(':')
  .filter((p) => !p.includes('node_modules'))
  .join(':');

/**
 * A user's PATH: the machine's, with a supported Node first (this test run's
 * own, the Node 24 devDependency; the machine's Node 20 is past end of life and
 * outside `engines`). The installed package runs on whatever `node` this finds,
 * so npm, the bins and the units they write all use it.
 */
export const USER_PATH = `${userNodeDir()}:${SYSTEM_PATH}`;

function userNodeDir(): string {
  // One directory per Node binary: a link left by a run from another checkout must not be reused.
  const tag = crypto.createHash('sha256').update(process.execPath).digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), `pilot-test-user-node-${process.version}-${tag}`);
  const link = path.join(dir, 'node');
  fs.mkdirSync(dir, { recursive: true });
  try {
    fs.symlinkSync(process.execPath, link);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another test file made it
  }
  return dir;
}

/**
 * npm settings for a clean HOME, on a supported Node (USER_PATH). The npm cache
 * lives outside it and is kept between runs: only the first run downloads the deps.
 */
/** What npm needs from the machine to reach a registry: proxies and extra CA certificates (a TLS-inspecting proxy). */
const NETWORK_ENV = [
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'NO_PROXY',
  'no_proxy',
  'npm_config_cafile',
  'npm_config_registry',
];

export function npmEnv(home: string): NodeJS.ProcessEnv {
  const passed = Object.fromEntries(NETWORK_ENV.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
  return {
    ...passed,
    HOME: home,
    PATH: USER_PATH,
    npm_config_userconfig: path.join(home, '.npmrc'),
    npm_config_cache: path.join(os.tmpdir(), 'pilot-test-npm-cache'),
    npm_config_prefer_offline: 'true',
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  };
}

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): string {
  const r = spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/**
 * `npm pack` this checkout into `dest` (the prepack script builds dist/ first); returns the .tgz path.
 * Under `npm test` (PILOT_TEST_PACK_DIR set) test files run side by side, and two packs in one
 * checkout would clash on dist/: the first caller packs into that directory under a lock, the
 * others wait for it and share the tarball.
 */
export function packTarball(dest: string, env: NodeJS.ProcessEnv = npmEnv(os.tmpdir())): string {
  const shared = process.env.PILOT_TEST_PACK_DIR;
  if (shared) return packShared(shared, env);
  return packInto(dest, env);
}

function packShared(dir: string, env: NodeJS.ProcessEnv): string {
  const lock = path.join(dir, 'lock');
  const deadline = Date.now() + 240_000;
  for (;;) {
    const done = fs.readdirSync(dir).find((f) => f.endsWith('.tgz'));
    if (done) return path.join(dir, done);
    try {
      fs.mkdirSync(lock); // atomic: exactly one caller packs
    } catch {
      if (Date.now() > deadline) throw new Error(`waited 240 s for another test's npm pack in ${dir}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
      continue;
    }
    try {
      const staging = fs.mkdtempSync(path.join(dir, 'staging-'));
      const tgz = packInto(staging, env);
      const final = path.join(dir, path.basename(tgz));
      fs.renameSync(tgz, final); // the .tgz appears whole or not at all
      return final;
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
}

function packInto(dest: string, env: NodeJS.ProcessEnv): string {
  const out = npm(['pack', '--silent', '--pack-destination', dest], ROOT, env, 120_000);
  const name = out.trim().split('\n').pop() ?? '';
  const tgz = path.join(dest, name);
  if (!name.endsWith('.tgz') || !fs.existsSync(tgz)) throw new Error(`npm pack wrote no tarball: ${out}`);
  return tgz;
}

/** A new ESM project in `dir` with `specs` installed (the tarball, plus e.g. @types/node). */
export function installInProject(dir: string, specs: string[], env: NodeJS.ProcessEnv): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'pilot-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
  npm(['install', '--no-audit', '--no-fund', ...specs], dir, env, 180_000);
}
