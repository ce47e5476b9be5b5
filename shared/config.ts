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

/**
 * Replicas of the cluster's KV bucket, used only when a node creates it: 3 on a 3-node NATS
 * cluster keeps leases through the loss of one NATS server.
 */
export function kvReplicas(flag: number | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const raw = flag ?? env.PGTRICKLE_KV_REPLICAS;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1 || n > 5) {
    throw new PgTrickleError('CONFIG_INVALID', `KV replicas must be an integer from 1 to 5, got ${raw}`, {
      hint: 'NATS JetStream allows 1 to 5 replicas; use the number of NATS servers, at most 5.',
    });
  }
  return n;
}
