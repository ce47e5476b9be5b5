import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installedVersion, loadMigrations, migrate } from '../../sql/migrate.js';
import { freshDatabase } from '../harness/index.js';

describe('migrations', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let client: pg.Client;

  beforeAll(async () => {
    db = await freshDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  const versions = async () =>
    (
      await client.query<{ version: number }>('SELECT version FROM pgtrickle.pgt_schema_version ORDER BY 1')
    ).rows.map((r) => r.version);

  it('installs every migration once on a fresh database, one row per version', async () => {
    const expected = loadMigrations().map((m) => m.version);
    const result = await migrate(client);
    expect(result.applied.map((m) => m.version)).toEqual(expected);
    expect(await versions()).toEqual(expected);
    expect(await installedVersion(client)).toBe(expected.length);
  });

  it('changes nothing when run again', async () => {
    const before = await versions();
    const result = await migrate(client);
    expect(result.applied).toEqual([]);
    expect(await versions()).toEqual(before);
  });

  it('keeps one row per version when several nodes migrate at once', async () => {
    const other = await freshDatabase();
    const clients = await Promise.all(
      [1, 2, 3].map(async () => {
        const c = new pg.Client({ connectionString: other.url });
        await c.connect();
        return c;
      }),
    );
    try {
      const results = await Promise.all(clients.map((c) => migrate(c)));
      const appliedTotal = results.reduce((n, r) => n + r.applied.length, 0);
      expect(appliedTotal).toBe(loadMigrations().length);
      const first = clients[0];
      if (!first) throw new Error('no client');
      const { rows } = await first.query<{ n: string }>(
        'SELECT count(*) AS n FROM pgtrickle.pgt_schema_version GROUP BY version HAVING count(*) > 1',
      );
      expect(rows).toEqual([]);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
      await other.drop();
    }
  });

  it('gives pgt_refresh_history a foreign key that cascades deletes of its stream table', async () => {
    const { rows } = await client.query<{ def: string }>(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = 'pgtrickle.pgt_refresh_history'::regclass AND contype = 'f'`,
    );
    expect(rows.map((r) => r.def)).toEqual([
      'FOREIGN KEY (pgt_id) REFERENCES pgtrickle.pgt_stream_tables(pgt_id) ON DELETE CASCADE',
    ]);
  });

  it('has no duplicated CHECK constraints in the catalog', async () => {
    const { rows } = await client.query<{ rel: string; def: string; n: string }>(
      `SELECT conrelid::regclass::text AS rel, pg_get_constraintdef(oid) AS def, count(*) AS n
         FROM pg_constraint
        WHERE contype = 'c' AND connamespace = 'pgtrickle'::regnamespace
        GROUP BY 1, 2 HAVING count(*) > 1`,
    );
    expect(rows).toEqual([]);
  });

  it('indexes stream tables by relid and status, dependencies by stream table and source', async () => {
    const { rows } = await client.query<{ def: string }>(
      `SELECT indexdef AS def FROM pg_indexes WHERE schemaname = 'pgtrickle'
          AND tablename IN ('pgt_stream_tables', 'pgt_dependencies')`,
    );
    const defs = rows.map((r) => r.def).join('\n');
    expect(defs).toMatch(/pgt_stream_tables USING btree \(pgt_relid\)/);
    expect(defs).toMatch(/pgt_stream_tables USING btree \(status\)/);
    expect(defs).toMatch(/pgt_dependencies USING btree \(pgt_id, source_relid\)/);
    expect(defs).toMatch(/pgt_dependencies USING btree \(source_relid\)/);
  });
});
