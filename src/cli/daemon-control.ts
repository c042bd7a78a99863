// `pilotctl daemon start|stop|status`: start the daemon detached, wait until it
// has registered, and print what the seed article shows.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as v from 'valibot';
import { configError, configSocket, loadConfig, pilotHome, DaemonConfigSchema, type DaemonConfig } from '../daemon/config.ts';
import { IpcClient } from '../ipc/client.ts';
import { HomeLock, pidAlive } from '../daemon/home-lock.ts';
import { PilotError } from '../util/errors.ts';
import { parseHostPort } from '../util/hostport.ts';
import { parseMetricsAddress } from '../metrics/metrics-address.ts';
import type { NodeFlags } from './node-options.ts';
import { checkUplinkSettings } from '../daemon/uplink-settings.ts';

// main.ts next to this file in src/, main.js in the compiled dist/: the same extension as this module.
const HERE = fileURLToPath(import.meta.url);
const DAEMON_MAIN = path.join(path.dirname(HERE), '..', 'daemon', `main${path.extname(HERE)}`);

import { DEFAULT_REGISTRY } from '../daemon/config-file.ts';
import { DAEMON_NODE_FLAGS, daemonEnv } from '../os-service/daemon-command.ts';
import { parseInterfaceList } from '../daemon/local-interfaces.ts';

export { DEFAULT_REGISTRY };

export type StartFlags = NodeFlags & { home?: string; socket?: string };

/** --join <token>: the network the daemon joined at start (fleets). */
export interface JoinedAtStart {
  net: number;
  name: string;
  tags: string[];
  /** Already a member (networks.json): nothing was asked of the rendezvous. */
  already: boolean;
}

export interface StartResult {
  pid: number;
  address: string;
  socket: string;
  log: string;
  home: string;
  /** The daemon's Prometheus endpoint (http://HOST:PORT/metrics), when config.metrics is set. */
  metrics?: string;
  /** The rendezvous the daemon uses. */
  registry: string;
  /** Nothing named a rendezvous (no --registry, $PILOT_REGISTRY or saved config): DEFAULT_REGISTRY was used. */
  registryDefault?: true;
  joined?: JoinedAtStart;
}

/** Did nothing name a rendezvous, so that DEFAULT_REGISTRY is used? (What mergeConfig falls back on.) */
export function registryIsDefault(home: string, f: StartFlags, env: NodeJS.ProcessEnv = process.env): boolean {
  return f.registry === undefined && !env.PILOT_REGISTRY && loadConfig(home)?.registry === undefined;
}

/** Tell the user a default chose the rendezvous when it cannot be reached: that is the likely cause. */
function withDefaultRegistry(err: unknown, registry: string): unknown {
  if (!(err instanceof PilotError) || (err.code !== 'UNREACHABLE' && err.code !== 'TIMEOUT')) return err;
  return new PilotError(
    err.code,
    `${err.message} (${registry} is the default: no --registry was given)`,
    `pass the rendezvous with --registry HOST:PORT (or $PILOT_REGISTRY); the default only fits a pilot-rendezvous on this host${err.hint ? `. ${err.hint}` : ''}`,
  );
}

export function mergeConfig(home: string, f: StartFlags): DaemonConfig {
  const saved = loadConfig(home);
  // As in the seed: `daemon start --email … --hostname …` needs no --registry (a local rendezvous by default).
  const registry = f.registry ?? process.env.PILOT_REGISTRY ?? saved?.registry ?? DEFAULT_REGISTRY;
  const email = f.email ?? saved?.email;
  if (!registry)
    throw new PilotError('BAD_ARGUMENT', 'no rendezvous server configured', 'first start needs --registry HOST:PORT (e.g. --registry 127.0.0.1:9000)');
  if (!email) throw new PilotError('BAD_ARGUMENT', 'no email configured', 'first start needs --email you@example.com');
  parseHostPort(registry, 9000);
  if (f.beacon) parseHostPort(f.beacon, 9000);
  if (f.metrics) parseMetricsAddress(f.metrics);
  // Checked now, not when auto mode first falls through to wss minutes later.
  checkUplinkSettings(f);
  parseInterfaceList(f.candidateInterfaces); // a bad name fails here, naming itself
  const changedServer = saved !== undefined && saved.registry !== registry;
  const parsed = v.safeParse(DaemonConfigSchema, {
    ...(saved ?? {}),
    registry,
    email,
    ...(f.beacon ? { beacon: f.beacon } : {}),
    ...(f.hostname ? { hostname: f.hostname } : {}),
    ...(f.public !== undefined ? { public: f.public } : {}),
    ...(f.uplink !== undefined ? { uplink: f.uplink } : {}),
    ...(f.wss !== undefined ? { wss: f.wss } : {}),
    ...(f.tlsCa !== undefined ? { tlsCa: f.tlsCa } : {}),
    ...(f.proxy !== undefined ? { proxy: f.proxy } : {}),
    ...(f.cc !== undefined ? { cc: f.cc } : {}),
    ...(f.metrics !== undefined ? { metrics: f.metrics } : {}),
    ...(f.invite !== undefined ? { invite: f.invite } : {}),
    ...(f.ephemeral !== undefined ? { ephemeral: f.ephemeral } : {}),
    ...(f.candidateInterfaces !== undefined ? { candidateInterfaces: f.candidateInterfaces } : {}),
    ...(f.portmap === false ? { portmap: false } : {}),
    ...(f.socket ? { socket: f.socket } : {}),
    ...(f.listen ? { listen: f.listen } : {}),
    // A different rendezvous has a different key: learn it again.
    ...(changedServer ? { serverKey: undefined } : {}),
  });
  if (!parsed.success) {
    throw configError(parsed.issues, (f) => `--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  return parsed.output;
}

export async function startDaemon(f: StartFlags, progress: (text: string) => void, join?: string): Promise<StartResult> {
  const home = pilotHome(f.home);
  const registryDefault = registryIsDefault(home, f);
  const cfg = mergeConfig(home, f);
  const socket = configSocket(cfg, home);
  const probe = new IpcClient(socket);
  const running = await probe.call('info').catch(() => undefined);
  probe.close();
  if (running) {
    throw new PilotError(
      'DAEMON_RUNNING',
      `a daemon is already running (pid ${running.pid}, ${running.address}) on ${socket}`,
      'stop it first: pilotctl daemon stop',
    );
  }
  // Another node on this home (a daemon on another socket, an embedded startNode()): refused before a
  // daemon process is spawned just to be refused by the lock (src/daemon/home-lock.ts).
  HomeLock.refuseIfHeld(home);
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  // The config goes to the daemon on stdin, not to config.json: the daemon saves it once it runs, so a
  // refused or failed start (another node holds this home, a bad --listen) leaves the saved config alone.
  const logPath = path.join(home, 'pilot.log');
  const errFd = fs.openSync(logPath, 'a', 0o600);
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...process.execArgv, DAEMON_MAIN, '--home', home, '--config-stdin'], {
    detached: true,
    stdio: ['pipe', 'pipe', errFd],
    // The join token is a secret: in the environment, never on the command line (ps) nor in config.json.
    env: { ...daemonEnv(), ...process.env, PILOT_HOME: home, ...(join ? { PILOT_JOIN_TOKEN: join } : {}) },
  });
  fs.closeSync(errFd);
  child.stdin!.on('error', () => {}); // a daemon that died at once: reported by 'exit' below
  child.stdin!.end(JSON.stringify(cfg));
  progress(`starting daemon (pid ${child.pid})`);
  const dots = setInterval(() => progress('.'), 250);
  try {
    const ready = await new Promise<{
      ready: boolean;
      pid: number;
      address: string;
      socket: string;
      log: string;
      metrics?: string;
      joined?: JoinedAtStart;
      error?: { code: string; message: string; hint?: string };
    }>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new PilotError('TIMEOUT', 'the daemon did not come up within 20 s', `see ${logPath}`)), 20_000);
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          try {
            resolve(JSON.parse(buf.slice(0, nl)));
          } catch {
            reject(new PilotError('INTERNAL', `unexpected daemon output: ${buf.slice(0, 200)}`));
          }
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new PilotError('INTERNAL', `the daemon exited (code ${code}) before it was ready`, `see ${logPath}`));
      });
    });
    if (!ready.ready) {
      // It exits right after saying why: wait for that, so the PILOT_HOME lock it held is free
      // when we return (a start retried at once found it still held: DAEMON_RUNNING).
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((done) => {
          const t = setTimeout(done, 3000);
          child.once('exit', () => {
            clearTimeout(t);
            done();
          });
        });
      }
      const e = ready.error!;
      throw new PilotError(e.code as PilotError['code'], e.message, e.hint);
    }
    return {
      pid: ready.pid,
      address: ready.address,
      socket: ready.socket,
      log: ready.log,
      home,
      ...(ready.metrics ? { metrics: ready.metrics } : {}),
      registry: cfg.registry,
      ...(registryDefault ? { registryDefault: true as const } : {}),
      ...(ready.joined ? { joined: ready.joined } : {}),
    };
  } catch (err) {
    throw registryDefault ? withDefaultRegistry(err, cfg.registry) : err;
  } finally {
    clearInterval(dots);
    child.stdout?.destroy();
    child.unref();
  }
}

export async function stopDaemon(socket: string): Promise<{ pid: number }> {
  const c = new IpcClient(socket);
  try {
    const r = await c.call('stop');
    // Wait until the process is gone so a following start does not race it.
    for (let i = 0; i < 100 && pidAlive(r.pid); i++) await new Promise((res) => setTimeout(res, 50));
    return r;
  } finally {
    c.close();
  }
}
