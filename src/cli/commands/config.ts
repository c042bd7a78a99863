// pilotctl init / pilotctl config [--set k=v]: the daemon's one config file,
// $PILOT_HOME/config.json, written and changed only through the schema
// (src/daemon/config.ts) plus the checks the daemon would otherwise fail on
// late. Every key is documented in docs/CONFIG.md.
import type { Command } from 'commander';
import * as v from 'valibot';
import { configError, configPath, DaemonConfigSchema, loadConfig, pilotHome, saveConfig, type DaemonConfig } from '../../daemon/config.ts';
import { normalizeHostname } from '../../registry/hostname.ts';
import { PilotError } from '../../util/errors.ts';
import { parseHostPort } from '../../util/hostport.ts';
import { parseMetricsAddress } from '../../metrics/metrics-address.ts';
import { DEFAULT_REGISTRY } from '../daemon-control.ts';
import { addNodeOptions, type NodeFlags } from '../node-options.ts';
import { ok } from '../output.ts';
import { checkUplinkSettings, redactProxyUrl } from '../../daemon/uplink-settings.ts';

/** The config as printed: a proxy password is never shown (it stays in the 0600 file only). */
const shown = (c: DaemonConfig): DaemonConfig => (c.proxy ? { ...c, proxy: redactProxyUrl(c.proxy) } : c);
import type { RunWrapper } from '../action.ts';
import { parseInterfaceList } from '../../daemon/local-interfaces.ts';

export const CONFIG_KEYS = Object.keys(DaemonConfigSchema.entries) as Array<keyof DaemonConfig>;
const DOC = 'see docs/CONFIG.md';

/** Schema check plus the value checks the schema cannot express. */
export function validateConfig(raw: Record<string, unknown>): DaemonConfig {
  const parsed = v.safeParse(DaemonConfigSchema, raw);
  if (!parsed.success) {
    const e = configError(parsed.issues);
    throw new PilotError(e.code, e.message, `${e.hint}; ${DOC}`);
  }
  const c = parsed.output;
  const hp = (key: string, v: string | undefined): void => {
    if (v === undefined) return;
    try {
      parseHostPort(v, key === 'listen' ? 0 : 9000);
    } catch (err) {
      throw new PilotError('BAD_ARGUMENT', `${key}: ${(err as Error).message}`, `${key} is HOST:PORT, e.g. 127.0.0.1:9000; ${DOC}`);
    }
  };
  hp('registry', c.registry);
  hp('beacon', c.beacon);
  if (c.listen !== 'none') hp('listen', c.listen);
  checkUplinkSettings(c, false);
  if (c.metrics !== undefined) parseMetricsAddress(c.metrics);
  parseInterfaceList(c.candidateInterfaces); // names checked before they are saved
  if (c.hostname !== undefined) c.hostname = normalizeHostname(c.hostname);
  return c;
}

function parseValue(key: keyof DaemonConfig, value: string): unknown {
  if (key === 'public' || key === 'ephemeral' || key === 'portmap') {
    if (/^(true|yes|on|1)$/i.test(value)) return true;
    if (/^(false|no|off|0)$/i.test(value)) return false;
    throw new PilotError('BAD_ARGUMENT', `${key}: expected true or false, got ${JSON.stringify(value)}`, `e.g. --set ${key}=true; ${DOC}`);
  }
  return value;
}

/** Apply `k=v` assignments to a config; `k=` removes an optional key. */
export function applySets(current: DaemonConfig, sets: string[]): DaemonConfig {
  const next: Record<string, unknown> = { ...current };
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new PilotError('BAD_ARGUMENT', `expected key=value, got ${JSON.stringify(s)}`, 'e.g. pilotctl config --set hostname=agent-alpha');
    const key = s.slice(0, eq);
    const value = s.slice(eq + 1);
    if (!(CONFIG_KEYS as string[]).includes(key))
      throw new PilotError('BAD_ARGUMENT', `unknown config key ${JSON.stringify(key)}`, `keys: ${CONFIG_KEYS.join(', ')}; ${DOC}`);
    if (value === '') delete next[key];
    else next[key] = parseValue(key as keyof DaemonConfig, value);
  }
  return validateConfig(next);
}

type InitFlags = NodeFlags & { force?: boolean };

export function registerConfigCommands(program: Command, run: RunWrapper): void {
  addNodeOptions(program.command('init').description('write the daemon config ($PILOT_HOME/config.json) without starting anything'), DEFAULT_REGISTRY)
    .option('--force', 'replace an existing config')
    .action(
      run(async (g, out, _c, f: InitFlags) => {
        const home = pilotHome(g.home);
        const file = configPath(home);
        let existing: DaemonConfig | undefined;
        try {
          existing = loadConfig(home);
        } catch {
          existing = undefined; // unreadable: --force may replace it
          if (!f.force) throw new PilotError('BAD_ARGUMENT', `${file} exists but is invalid`, 'replace it: pilotctl init --force …');
        }
        if (existing && !f.force)
          throw new PilotError(
            'BAD_ARGUMENT',
            `${file} already exists`,
            'change keys with: pilotctl config --set key=value (or replace it: pilotctl init --force …)',
          );
        if (!f.email) throw new PilotError('BAD_ARGUMENT', 'init needs --email', 'pilotctl init --email you@example.com [--registry HOST:PORT]');
        const socket = g.socket ?? process.env.PILOT_SOCKET;
        const cfg = validateConfig({
          registry: f.registry,
          email: f.email,
          ...(f.beacon ? { beacon: f.beacon } : {}),
          ...(f.hostname ? { hostname: f.hostname } : {}),
          ...(f.public ? { public: true } : {}),
          ...(f.listen ? { listen: f.listen } : {}),
          ...(f.uplink ? { uplink: f.uplink } : {}),
          ...(f.wss ? { wss: f.wss } : {}),
          ...(f.tlsCa ? { tlsCa: f.tlsCa } : {}),
          ...(f.proxy ? { proxy: f.proxy } : {}),
          ...(f.cc ? { cc: f.cc } : {}),
          ...(f.metrics ? { metrics: f.metrics } : {}),
          ...(f.candidateInterfaces ? { candidateInterfaces: f.candidateInterfaces } : {}),
          ...(f.portmap === false ? { portmap: false } : {}),
          ...(socket ? { socket } : {}),
        });
        saveConfig(home, cfg);
        ok(
          out,
          { path: file, config: shown(cfg) },
          () => `Wrote ${file}\nStart the daemon: pilotctl daemon start   (or run it as a service: pilotctl service install)`,
        );
      }),
    );
  program
    .command('config')
    .description('print the daemon config, or change keys with --set key=value (validated; see docs/CONFIG.md)')
    .option('--set <key=value>', 'set a key (repeatable; key= removes an optional key)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(
      run(async (g, out, _c, f: { set: string[] }) => {
        const home = pilotHome(g.home);
        const file = configPath(home);
        const cfg = loadConfig(home);
        if (!cfg) throw new PilotError('NOT_FOUND', `no config at ${file}`, 'create one: pilotctl init --email you@example.com [--registry HOST:PORT]');
        if (f.set.length === 0) {
          const c = shown(cfg);
          ok(out, { path: file, config: c }, () =>
            [`# ${file}`, ...CONFIG_KEYS.filter((k) => c[k] !== undefined).map((k) => `${k} = ${String(c[k])}`)].join('\n'),
          );
          return;
        }
        const next = applySets(cfg, f.set);
        saveConfig(home, next);
        ok(
          out,
          { path: file, config: shown(next), changed: f.set.map((s) => s.slice(0, s.indexOf('='))) },
          () => `Saved ${file}\nA running daemon keeps its old settings until: pilotctl daemon stop && pilotctl daemon start`,
        );
      }),
    );
}
