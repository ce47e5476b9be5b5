// What a node may assume about its database connections when a pooler such as PgBouncer sits
// between it and PostgreSQL: in transaction mode a connection is a server session only for the
// length of one transaction, so nothing may outlive a COMMIT on it.
import { PgTrickleError } from '../../shared/errors/index.js';

export const CONNECTION_POOLER_MODES = ['session', 'transaction'] as const;
export type ConnectionPoolerMode = (typeof CONNECTION_POOLER_MODES)[number];

/** The flag first, then $PGTRICKLE_CONNECTION_POOLER_MODE, then 'session'. */
export function connectionPoolerMode(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ConnectionPoolerMode {
  const raw = (flag ?? env.PGTRICKLE_CONNECTION_POOLER_MODE ?? '').trim().toLowerCase();
  if (raw === '') return 'session';
  const mode = CONNECTION_POOLER_MODES.find((m) => m === raw);
  if (mode === undefined) {
    throw new PgTrickleError(
      'CONFIG_INVALID',
      `connection pooler mode must be one of ${CONNECTION_POOLER_MODES.join(', ')}, got ${raw}`,
      {
        hint: "Use 'transaction' behind PgBouncer (or another pooler) in transaction mode, else 'session'.",
      },
    );
  }
  return mode;
}

export interface PoolerBehaviour {
  /**
   * LISTEN registers on one server session; behind a transaction-mode pooler that session goes
   * back to the pool after the statement, and its notifications are lost or reach other clients.
   */
  readonly listen: boolean;
  /**
   * Without notifications, catalog changes (create, alter, drop) are seen by rereading the
   * catalog, so it is reread more often.
   */
  readonly catalogRefreshMs: number;
}

export function poolerBehaviour(mode: ConnectionPoolerMode): PoolerBehaviour {
  switch (mode) {
    case 'session':
      return { listen: true, catalogRefreshMs: 10_000 };
    case 'transaction':
      return { listen: false, catalogRefreshMs: 2_000 };
    default: {
      const exhaustive: never = mode;
      return exhaustive;
    }
  }
}
