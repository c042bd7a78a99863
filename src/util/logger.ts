// pino loggers: the daemon logs to a file ($PILOT_HOME/pilot.log), servers to stdout.
import pino from 'pino';

export type Logger = pino.Logger;

export function fileLogger(path: string, level = process.env.PILOT_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: path, mkdir: true, sync: false }));
}

export function stdoutLogger(level = process.env.PILOT_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid } });
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
