// A migrated throwaway database per test file, the oracle (I5) and catalog inspection helpers.
import pg from 'pg';
import { type PlanOutcome, planStreamTable } from '../../cluster/planner/install.js';
import { loadMigrations, migrate } from '../../sql/migrate.js';
import { freshDatabase } from '../harness/index.js';

export interface TestDb {
  url: string;
  /** A superuser connection, open for the whole file. */
  admin: pg.Client;
  connect(): Promise<pg.Client>;
  drop(): Promise<void>;
}

/** `upTo` stops at that migration, for a catalog of an earlier release. */
export async function migratedDatabase(options: { upTo?: number } = {}): Promise<TestDb> {
  const db = await freshDatabase();
  const clients: pg.Client[] = [];
  const connect = async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    clients.push(client);
    return client;
  };
  const admin = await connect();
  const { upTo } = options;
  await migrate(
    admin,
    upTo === undefined ? {} : { migrations: loadMigrations().filter((m) => m.version <= upTo) },
  );
  return {
    url: db.url,
    admin,
    connect,
    drop: async () => {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await db.drop();
    },
  };
}

/**
 * Rows by which a stream table differs from its defining query evaluated now, as multisets
 * (EXCEPT ALL both ways). Invariant I5 says this is 0 after quiescence.
 */
export async function divergence(client: pg.ClientBase, name: string): Promise<number> {
  const { rows } = await client.query<{ q: string; st: string; cols: string }>(
    `SELECT st.defining_query AS q, format('%I.%I', st.pgt_schema, st.pgt_name) AS st,
            (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
              WHERE a.attrelid = st.pgt_relid AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attname NOT LIKE '\\_\\_pgt\\_%') AS cols
       FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = pgtrickle._resolve($1)`,
    [name],
  );
  const row = rows[0];
  if (!row) throw new Error(`no stream table ${name}`);
  const { rows: diff } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM (
       (SELECT ${row.cols} FROM ${row.st} EXCEPT ALL SELECT * FROM (${row.q}) q)
       UNION ALL
       (SELECT * FROM (${row.q}) q EXCEPT ALL SELECT ${row.cols} FROM ${row.st})) d`,
  );
  return Number(diff[0]?.n);
}

/** Compiles and installs the differential plan of a stream table, then refreshes it once. */
export async function makeDifferential(client: pg.ClientBase, name: string): Promise<PlanOutcome> {
  const { rows } = await client.query<{ id: string }>('SELECT pgtrickle._resolve($1) AS id', [name]);
  const outcome = await planStreamTable(client, String(rows[0]?.id));
  await client.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
  return outcome;
}

/** The action of a stream table's latest refresh: FULL, DIFFERENTIAL, REINITIALIZE. */
export async function lastAction(client: pg.ClientBase, name: string): Promise<string | undefined> {
  const { rows } = await client.query<{ action: string }>(
    `SELECT action FROM pgtrickle.pgt_refresh_history WHERE pgt_id = pgtrickle._resolve($1)
      ORDER BY refresh_id DESC LIMIT 1`,
    [name],
  );
  return rows[0]?.action;
}

/** Everything pgtrickle keeps about stream tables, counted, to show nothing is left behind. */
export async function footprint(client: pg.ClientBase): Promise<Record<string, number>> {
  const { rows } = await client.query<Record<string, string>>(`
    SELECT (SELECT count(*) FROM pgtrickle.pgt_stream_tables) AS stream_tables,
           (SELECT count(*) FROM pgtrickle.pgt_dependencies) AS dependencies,
           (SELECT count(*) FROM pgtrickle.pgt_refresh_history) AS history,
           (SELECT count(*) FROM pgtrickle.pgt_change_tracking) AS change_tracking,
           (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'pgtrickle_changes' AND c.relkind = 'r') AS buffers,
           (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'pgtrickle_changes') AS capture_functions,
           (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgtrickle_cdc_%') AS triggers,
           (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgtrickle', 'pgtrickle_changes')
               AND n.nspname NOT LIKE 'pg_toast%' AND c.relkind IN ('r', 'v')) AS user_relations`);
  return Object.fromEntries(Object.entries(rows[0] ?? {}).map(([k, v]) => [k, Number(v)]));
}

/** Collects the NOTICE messages a client receives while `fn` runs. */
export async function notices<T>(
  client: pg.Client,
  fn: () => Promise<T>,
): Promise<{ result: T; notices: string[] }> {
  const seen: string[] = [];
  const listener = (msg: { message?: string }) => {
    if (msg.message) seen.push(msg.message);
  };
  client.on('notice', listener);
  try {
    return { result: await fn(), notices: seen };
  } finally {
    client.off('notice', listener);
  }
}

/** The error a statement raises, for asserting on message, code and hint. */
export async function pgError(promise: Promise<unknown>): Promise<pg.DatabaseError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof pg.DatabaseError) return err;
    throw err;
  }
  throw new Error('expected the statement to fail, but it succeeded');
}
