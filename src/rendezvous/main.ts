// CLI entry: pilot-rendezvous [--listen HOST:PORT] [--alt-port P] [--data DIR] [--store postgres://…] [--log-level L] [--json]
// stdout carries only what a starter waits for, once the sockets are bound:
//   listening udp+tcp HOST:PORT key=<base64 server key> alt=<beacon alt port>
// and, with --http, a second line: http HOST:PORT (with --json: one {"status":"ok","data":{…}} line instead).
// The log goes to stderr, all of it pino NDJSON (journald `<N>` lines when stderr is the journal), and a
// failure is printed as pilotctl prints one: `error [CODE]: message` + `hint: …` (exit 2 for a bad flag).
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { formatHostPort, parseHostPort } from '../util/hostport.ts';
import { asPilotError, PilotError } from '../util/errors.ts';
import { errorText, exitStatus } from '../util/error-output.ts';
import { LOG_LEVELS, streamLogger } from '../util/logger.ts';
import { startRendezvous } from './server.ts';
import { limitsFromFlags, type LimitFlags } from './registry-limits.ts';
import { resolveAdminToken } from './admin-token.ts';
import { isPostgresUrl, redactUrl } from './store/postgres-connect.ts';

const program = new Command()
  .name('pilot-rendezvous')
  .description('Pilot rendezvous server: registry + beacon + relay on one UDP/TCP port')
  .option('--listen <host:port>', 'address to listen on (UDP and TCP)', '0.0.0.0:9000')
  .option('--alt-port <port>', 'second UDP port answering beacon hellos only, for NAT classification (default: listen port + 1; "none" to disable)')
  .option('--relay-rate <bytes/s>', 'relayed bytes per second per sending node (bursts of half a second more)', '2000000')
  .option('--cookie-rotate <seconds>', 'UDP address validation: rotate the cookie secret this often; a cookie is accepted for one to two periods', '120')
  .option('--data <dir>', 'data directory (server key, registry database)', path.join(os.homedir(), '.pilot-rendezvous'))
  .option(
    '--store <url>',
    'registry in PostgreSQL, shared by several rendezvous instances: postgres://USER:PASSWORD@HOST:PORT/DB (default: $PILOT_STORE, else SQLite in --data)',
    process.env.PILOT_STORE || undefined,
  )
  .option(
    '--advertise <host[:port]>',
    'with --store: the address other rendezvous instances reach this one at (default: the --listen address; required when listening on 0.0.0.0)',
  )
  .option('--tls-listen <host:port>', 'also serve the WebSocket uplink and relay over TLS (wss://) here, e.g. :443, for networks that let only HTTPS out')
  .option('--tls-cert <file>', 'with --tls-listen: PEM certificate chain (e.g. certbot fullchain.pem); re-read on SIGHUP and when the file changes')
  .option('--tls-key <file>', 'with --tls-listen: PEM private key of --tls-cert')
  .option('--http <host:port>', 'serve /metrics and the dashboard on this HTTP address (off by default; e.g. 127.0.0.1:9080)')
  .option(
    '--admin-token-file <file>',
    'read the bearer token of the dashboard admin API from this file (default: $PILOT_ADMIN_TOKEN, else generated into DATA/admin-token)',
  )
  .option('--admin-token <token>', 'the admin token itself: visible to every local user in the process list, prefer $PILOT_ADMIN_TOKEN or --admin-token-file')
  .option('--replay-cache-size <n>', 'signed-request nonces remembered, all keys together (default 50000)')
  .option('--replay-per-key <n>', 'nonces remembered per signing key (default 256)')
  .option('--unregistered-per-source <n>', 'not yet registered keys with replay state per source address, IPv6 /64 (default 64)')
  .option('--max-unregistered-keys <n>', 'not yet registered keys with replay state, all sources together (default 10000)')
  .option('--unregistered-rate <req/s>', 'requests per second per source address from keys that are not registered (default 20, bursts of 5 s)')
  .option('--registration-rate <n/min>', 'new identities per minute per source address (default 2)')
  .option('--registration-burst <n>', 'new identities at once per source address (default 64)')
  .option('--hostname-lease <days>', 'a hostname lapses after its node was offline this long; the address stays with the key (default 30; 0 = never)')
  .option('--trust-request-ttl <days>', 'unanswered trust requests are dropped after this (default 7)')
  .option('--source-trust-rate <n/min>', 'trust requests per minute per source address, all its keys together (default 60, as a burst too)')
  .option('--networks-per-admin <n>', 'fleets: networks one admin key may administer (default 16)')
  .option('--members-per-network <n>', 'fleets: members of one network (default 10000)')
  .option('--request-rate <req/s>', 'registry requests per second per source address, bursts of 2 s (default 500; a fleet behind one NAT address shares it)')
  .option('--ephemeral-timeout <seconds>', 'an ephemeral node silent this long is removed, its address and hostname released (default 120)')
  .option(
    '--invite-tokens <tokens|@file>',
    'admit new identities by invitation only: comma-separated tokens, or @FILE with one a line (default: open registration)',
  )
  .option('--log-level <level>', 'trace, debug, info, warn, error, silent (default: $PILOT_LOG_LEVEL, else info)', process.env.PILOT_LOG_LEVEL || 'info')
  .option('--json', 'machine-readable stdout: the start line and errors as JSON')
  .exitOverride()
  // Usage errors are printed below in the one error format; --help still goes to stdout.
  .configureOutput({ writeErr: () => {} });

async function main(): Promise<void> {
  program.parse();
  json = program.opts().json === true;
  const opts = program.opts<
    LimitFlags & {
      listen: string;
      data: string;
      logLevel: string;
      altPort?: string;
      relayRate: string;
      cookieRotate: string;
      http?: string;
      adminToken?: string;
      adminTokenFile?: string;
      store?: string;
      advertise?: string;
      requestRate?: string;
      tlsListen?: string;
      tlsCert?: string;
      tlsKey?: string;
    }
  >();
  if (!(LOG_LEVELS as readonly string[]).includes(opts.logLevel)) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `unknown log level ${JSON.stringify(opts.logLevel)}`,
      `--log-level (or $PILOT_LOG_LEVEL) takes ${LOG_LEVELS.join(', ')}`,
    );
  }
  const listen = parseHostPort(opts.listen, 9000);
  const logger = streamLogger(2, opts.logLevel);
  let altPort: number | undefined;
  if (opts.altPort === undefined) altPort = listen.port === 0 ? 0 : listen.port + 1;
  else if (opts.altPort !== 'none') {
    altPort = Number(opts.altPort);
    if (!Number.isInteger(altPort) || altPort < 0 || altPort > 65535)
      throw new PilotError('BAD_ARGUMENT', `bad --alt-port ${opts.altPort}`, 'a port number 0-65535, or "none"');
  }
  if (altPort === 65536) altPort = 0;
  const relayRate = Number(opts.relayRate);
  if (!Number.isFinite(relayRate) || relayRate < 1000)
    throw new PilotError('BAD_ARGUMENT', `bad --relay-rate ${opts.relayRate}`, 'bytes per second per node, at least 1000');
  const requestRate = opts.requestRate === undefined ? undefined : Number(opts.requestRate);
  if (requestRate !== undefined && (!Number.isFinite(requestRate) || requestRate < 10))
    throw new PilotError('BAD_ARGUMENT', `bad --request-rate ${opts.requestRate}`, 'registry requests per second per source address, at least 10');
  const cookieRotate = Number(opts.cookieRotate);
  if (!Number.isFinite(cookieRotate) || cookieRotate < 30 || cookieRotate > 3600)
    throw new PilotError(
      'BAD_ARGUMENT',
      `bad --cookie-rotate ${opts.cookieRotate}`,
      'seconds between cookie secret rotations, 30-3600 (default 120; at least 30 so the 20 s heartbeats always refresh the cookie in time)',
    );
  if (opts.store !== undefined && !isPostgresUrl(opts.store)) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `unsupported --store ${redactUrl(opts.store).slice(0, 80)}`,
      'use postgres://USER:PASSWORD@HOST:PORT/DATABASE, or leave --store out for SQLite in --data',
    );
  }
  if (opts.advertise !== undefined && opts.store === undefined)
    throw new PilotError('BAD_ARGUMENT', '--advertise is only used with --store', 'add --store postgres://… or drop --advertise');
  const advertise = opts.advertise === undefined ? undefined : parseHostPort(opts.advertise, 0);
  const adminToken = resolveAdminToken({ flag: opts.adminToken, file: opts.adminTokenFile, env: process.env.PILOT_ADMIN_TOKEN }, (text) => logger.warn(text));
  const http = opts.http === undefined ? undefined : { ...parseHostPort(opts.http, 9080), ...(adminToken ? { adminToken } : {}) };
  const registryLimits = limitsFromFlags(opts);
  if ((opts.tlsCert !== undefined || opts.tlsKey !== undefined) !== (opts.tlsListen !== undefined) || (opts.tlsListen && (!opts.tlsCert || !opts.tlsKey)))
    throw new PilotError(
      'BAD_ARGUMENT',
      '--tls-listen, --tls-cert and --tls-key go together',
      'serve wss with all three, e.g. --tls-listen :443 --tls-cert fullchain.pem --tls-key privkey.pem (certbot/lego write these files)',
    );
  const tlsAt = opts.tlsListen === undefined ? undefined : parseHostPort(opts.tlsListen.startsWith(':') ? `0.0.0.0${opts.tlsListen}` : opts.tlsListen, 443);
  const server = await startRendezvous({
    host: listen.host,
    port: listen.port,
    dataDir: path.resolve(opts.data),
    logger,
    registryLimits,
    replayCacheSize: registryLimits.replayCacheSize,
    relayRate: { perSec: relayRate, burst: relayRate / 2 },
    ...(requestRate !== undefined ? { requestRate: { perSec: requestRate, burst: 2 * requestRate } } : {}),
    cookieRotateMs: cookieRotate * 1000,
    ...(altPort !== undefined ? { altPort } : {}),
    ...(http ? { http } : {}),
    ...(tlsAt ? { tls: { ...tlsAt, certFile: path.resolve(opts.tlsCert!), keyFile: path.resolve(opts.tlsKey!) } } : {}),
    ...(opts.store ? { storeUrl: opts.store } : {}),
    ...(advertise ? { advertise: { host: advertise.host, ...(advertise.port ? { port: advertise.port } : {}) } } : {}),
  });
  // Before the start line: whoever waits for it may stop us at once (a supervisor, a test, `kill $!`).
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A renewed certificate (certbot/lego deploy hook: kill -HUP) is taken without a restart.
  // Only with --tls-listen: otherwise SIGHUP keeps its default (a closed terminal stops the server, as before).
  if (server.tls) process.on('SIGHUP', () => logger.info({ reloaded: server.reloadTls() }, 'SIGHUP: TLS certificate re-read'));
  const listening = formatHostPort({ host: listen.host, port: server.port });
  const key = server.publicKey.toString('base64');
  const httpAt = server.http ? formatHostPort(server.http) : undefined;
  const wssAt = server.tls ? formatHostPort(server.tls) : undefined;
  const data = {
    listen: listening,
    key,
    ...(server.altPort !== undefined ? { alt: server.altPort } : {}),
    ...(httpAt ? { http: httpAt } : {}),
    ...(wssAt ? { wss: wssAt } : {}),
  };
  logger.info(data, 'ready'); // what the start line says, in the log too
  if (json) process.stdout.write(`${JSON.stringify({ status: 'ok', data })}\n`);
  else {
    const alt = server.altPort !== undefined ? ` alt=${server.altPort}` : '';
    process.stdout.write(`listening udp+tcp ${listening} key=${key}${alt}\n`);
    if (httpAt) process.stdout.write(`http ${httpAt}\n`);
    if (wssAt) process.stdout.write(`wss ${wssAt}\n`);
  }
}

let json = process.argv.includes('--json');

main().catch((err: unknown) => {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') process.exit(0);
    process.stderr.write(errorText({ code: 'USAGE', message: err.message.replace(/^error: /, ''), hint: 'see: pilot-rendezvous --help' }, json));
    process.exit(exitStatus('USAGE'));
  }
  const e = asPilotError(err);
  process.stderr.write(errorText(e, json));
  process.exit(exitStatus(e.code));
});
