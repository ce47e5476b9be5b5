// Where settings come from: a command-line flag first, then the environment.
import { PgTrickleError } from './errors/index.js';

export function databaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = flag ?? env.PGTRICKLE_DATABASE_URL ?? env.DATABASE_URL;
  if (!url) {
    throw new PgTrickleError('NO_DATABASE', 'no database given', {
      hint: 'Pass --database-url postgres://user@host/db or set PGTRICKLE_DATABASE_URL.',
    });
  }
  return url;
}
