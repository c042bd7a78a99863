// CLI entry: pilot-rendezvous [--listen HOST:PORT] [--data DIR] [--log-level L]
// Prints one machine-readable line on stdout once both sockets are bound:
//   listening udp+tcp HOST:PORT key=<base64 server key>
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import pino from 'pino';
import { formatHostPort, parseHostPort } from '../util/hostport.ts';
import { PilotError } from '../util/errors.ts';
import { startRendezvous } from './server.ts';

const program = new Command()
  .name('pilot-rendezvous')
  .description('Pilot rendezvous server: registry + beacon + relay on one UDP/TCP port')
  .option('--listen <host:port>', 'address to listen on (UDP and TCP)', '0.0.0.0:9000')
  .option('--data <dir>', 'data directory (server key, registry database)', path.join(os.homedir(), '.pilot-rendezvous'))
  .option('--log-level <level>', 'trace, debug, info, warn, error, silent', process.env.PILOT_LOG_LEVEL ?? 'info')
  .showHelpAfterError();

async function main(): Promise<void> {
  program.parse();
  const opts = program.opts<{ listen: string; data: string; logLevel: string }>();
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(opts.logLevel)) {
    throw new PilotError('BAD_ARGUMENT', `unknown log level ${opts.logLevel}`, 'use trace, debug, info, warn, error or silent');
  }
  const listen = parseHostPort(opts.listen, 9000);
  const logger = pino({ level: opts.logLevel, base: { pid: process.pid } });
  const server = await startRendezvous({ host: listen.host, port: listen.port, dataDir: path.resolve(opts.data), logger });
  process.stdout.write(`listening udp+tcp ${formatHostPort({ host: listen.host, port: server.port })} key=${server.publicKey.toString('base64')}\n`);

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
}

main().catch((err) => {
  const e = err as PilotError;
  process.stderr.write(`pilot-rendezvous: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}\n`);
  process.exit(1);
});
