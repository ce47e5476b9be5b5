// One pino logger for the process: JSON lines, one event per line, fields say to what.
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: options.name ?? 'pgtrickle',
    level: options.level ?? process.env.PGTRICKLE_LOG_LEVEL ?? 'info',
  });
}
