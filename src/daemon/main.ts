// Foreground daemon process: `node src/daemon/main.ts [--home DIR]`.
// `pilotctl daemon start` spawns this detached; it can also run under systemd.
import path from 'node:path';
import fs from 'node:fs';
import * as v from 'valibot';
import { Daemon } from './daemon.ts';
import { DaemonConfigSchema, configSocket, loadConfig, pilotHome, type DaemonConfig } from './config.ts';
import { startIpcServer } from '../ipc/server.ts';
import { ipcHandlers } from './ipc-handlers.ts';
import { fileLogger, isJournal, stdoutLogger } from '../util/logger.ts';
import { asPilotError, PilotError } from '../util/errors.ts';
import { formatAddress } from '../wire/address.ts';
import { parseMetricsAddress } from '../metrics/metrics-address.ts';
import { formatHostPort } from '../util/hostport.ts';
import { importOptional } from '../util/optional-dep.ts';
import { issuesText } from '../util/schema.ts';
import { dataPathAead } from '../crypto/data-key.ts';

function configFromStdin(): DaemonConfig {
  const parsed = v.safeParse(DaemonConfigSchema, JSON.parse(fs.readFileSync(0, 'utf8')));
  if (!parsed.success) throw new PilotError('BAD_ARGUMENT', `invalid config on stdin: ${issuesText(parsed.issues)}`);
  return parsed.output;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const homeIdx = args.indexOf('--home');
  const home = pilotHome(homeIdx >= 0 ? args[homeIdx + 1] : undefined);
  // --log-stdout: for containers and supervisors that collect stdout. Under systemd ($JOURNAL_STREAM is our
  // stdout) the journal is the log: journald stamps, levels and rotates it, so no pilot.log of our own.
  const toStdout = args.includes('--log-stdout') || isJournal(1);
  // `pilotctl daemon start` hands over the merged config on stdin: it is saved only once this start succeeded.
  const config = args.includes('--config-stdin') ? configFromStdin() : loadConfig(home);
  if (!config) throw new PilotError('BAD_ARGUMENT', `no config in ${home}`, 'first start needs: pilotctl daemon start --registry HOST:PORT --email E');
  // $PILOT_EPHEMERAL=1 (containers, like $PILOT_JOIN_TOKEN): an ephemeral node (issue 18), as --ephemeral.
  const eph = process.env.PILOT_EPHEMERAL;
  if (eph !== undefined && eph !== '') {
    if (!['1', 'true', '0', 'false'].includes(eph))
      throw new PilotError(
        'BAD_ARGUMENT',
        `bad PILOT_EPHEMERAL=${eph.slice(0, 20)}`,
        'PILOT_EPHEMERAL=1 (or true) makes the node ephemeral; 0 or false does not',
      );
    config.ephemeral = eph === '1' || eph === 'true';
  }
  // not written into the config: the private default depends on the session ($XDG_RUNTIME_DIR)
  const socket = configSocket(config, home, 'daemon');
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const logPath = path.join(home, 'pilot.log');
  const log = toStdout ? stdoutLogger() : fileLogger(logPath);
  const metricsAt = config.metrics !== undefined ? parseMetricsAddress(config.metrics) : undefined;
  // prom-client is an optional peer dependency, loaded only for --metrics, and
  // before the daemon starts: a missing one fails fast with the npm command.
  const metricsModule = metricsAt ? await importOptional('prom-client', 'the Prometheus endpoint (--metrics)', () => import('./metrics.ts')) : undefined;
  const daemon = await Daemon.start({ home, config, logger: log, holder: 'daemon', socket });
  // --join <token> / $PILOT_JOIN_TOKEN (fleets): join with no human step. Idempotent: a member of the
  // token's network already (networks.json) asks nothing, so a restart with the same token is fine.
  const joinIdx = args.indexOf('--join');
  const token = (joinIdx >= 0 ? args[joinIdx + 1] : undefined) ?? process.env.PILOT_JOIN_TOKEN;
  delete process.env.PILOT_JOIN_TOKEN; // a secret: not left in our environment (nor handed to children)
  const joined = token
    ? await daemon.networks.join(token).catch(async (err: unknown) => {
        await daemon.stop();
        throw err;
      })
    : undefined;
  if (joined) log.info({ net: joined.membership.net, name: joined.membership.name, already: joined.already }, 'network joined');
  // --metrics: Prometheus text on its own HTTP listener (no auth: bind it privately).
  // prom-client (and its OpenTelemetry dependency) and node:http are loaded only
  // when asked for: together ~90 modules and ~20 MB of RSS an idle daemon does not need.
  const metrics =
    metricsAt && metricsModule
      ? await import('../metrics/metrics-http.ts')
          .then((h) => h.startMetricsHttp(metricsAt, metricsModule.createDaemonMetrics(daemon), (err) => log.warn({ err }, 'metrics endpoint error')))
          .catch(async (err: unknown) => {
            await daemon.stop();
            throw err;
          })
      : undefined;
  const metricsUrl = metrics ? `http://${formatHostPort(metrics)}/metrics` : undefined;
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info('stopping');
    await ipc.close().catch(() => {});
    await metrics?.close();
    await daemon.stop();
    fs.rmSync(path.join(home, 'daemon.pid'), { force: true });
    log.flush?.();
    setTimeout(() => process.exit(0), 50);
  };
  const ipc = await startIpcServer(
    socket,
    ipcHandlers(daemon, () => void stop()),
    (err) => log.error({ err }, 'ipc handler failed'),
  );
  fs.writeFileSync(path.join(home, 'daemon.pid'), `${process.pid}\n`, { mode: 0o600 });
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  // A bug in one request must not take the whole daemon down.
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  log.info({ address: formatAddress(daemon.address!), socket, aead: dataPathAead(), ...(metricsUrl ? { metrics: metricsUrl } : {}) }, 'daemon running');
  // The parent (pilotctl daemon start) waits for this line on our stdout.
  process.stdout.write(
    JSON.stringify({
      ready: true,
      pid: process.pid,
      address: formatAddress(daemon.address!),
      socket,
      log: toStdout ? (isJournal(1) ? 'journal' : 'stdout') : logPath,
      ...(metricsUrl ? { metrics: metricsUrl } : {}),
      ...(joined ? { joined: { net: joined.membership.net, name: joined.membership.name, tags: joined.membership.tags, already: joined.already } } : {}),
    }) + '\n',
  );
}

main().catch((err: unknown) => {
  const e = asPilotError(err);
  process.stdout.write(JSON.stringify({ ready: false, error: e.toJSON() }) + '\n');
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 50);
});
