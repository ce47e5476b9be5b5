// Row-level security on a source: a stream table holds what its owner may read (like REFRESH
// MATERIALIZED VIEW), through differential refreshes too, and policy changes rebuild it.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { divergence, lastAction, makeDifferential, migratedDatabase, type TestDb } from '../support/db.js';

// Roles are cluster-wide, so their names are unique per run.
const owner = `pgt_rls_owner_${randomBytes(4).toString('hex')}`;

describe('row-level security', () => {
  let db: TestDb;
  /** a session of the stream tables' owner, who is not the owner of the source */
  let mine: pg.Client;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`
      CREATE ROLE ${owner};
      GRANT USAGE, CREATE ON SCHEMA public TO ${owner};
      CREATE TABLE docs (id int PRIMARY KEY, tenant text NOT NULL, v int NOT NULL);
      INSERT INTO docs SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g FROM generate_series(1, 40) g;
      ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
      CREATE POLICY tenant_a ON docs FOR SELECT TO ${owner} USING (tenant = 'a');
      GRANT SELECT ON docs TO ${owner};`);
    mine = await db.connect();
    await mine.query(`SET ROLE ${owner}`);
  });
  afterAll(async () => {
    await db?.admin.query(`DROP OWNED BY ${owner}; DROP ROLE ${owner}`);
    await db?.drop();
  });

  const tenants = async (st: string) =>
    (await mine.query<{ tenant: string }>(`SELECT DISTINCT tenant FROM ${st} ORDER BY 1`)).rows.map(
      (r) => r.tenant,
    );

  it('computes a stream table with its owner’s rights: rows the policies hide stay out', async () => {
    await mine.query(`SELECT pgtrickle.create_stream_table('by_tenant',
      'SELECT tenant, count(*) AS n, sum(v) AS total FROM docs GROUP BY tenant')`);
    await mine.query(`SELECT pgtrickle.create_stream_table('rows_seen', 'SELECT id, tenant, v FROM docs')`);
    expect(await tenants('by_tenant')).toEqual(['a']);
    expect(await divergence(mine, 'by_tenant')).toBe(0);
    expect(await divergence(mine, 'rows_seen')).toBe(0);
  });

  it('keeps hidden rows out of differential refreshes: the change buffers hold every row, so it refreshes in full', async () => {
    await makeDifferential(mine, 'by_tenant');
    await makeDifferential(mine, 'rows_seen');
    await db.admin.query(`INSERT INTO docs VALUES (41, 'b', 41), (42, 'a', 42);
                          UPDATE docs SET tenant = 'a' WHERE id = 1; DELETE FROM docs WHERE id = 2`);
    for (const st of ['by_tenant', 'rows_seen']) {
      await mine.query('SELECT pgtrickle.refresh_stream_table($1)', [st]);
      expect(await lastAction(mine, st)).toBe('FULL');
      expect(await tenants(st)).toEqual(['a']);
      expect(await divergence(mine, st)).toBe(0);
    }
    // The superuser sees both tenants; the owner's stream table still holds only its own.
    const all = await db.admin.query(`SELECT count(DISTINCT tenant)::int AS n FROM docs`);
    expect(all.rows).toEqual([{ n: 2 }]);
  });

  it('rebuilds the stream table when a policy changes (event trigger)', async () => {
    await db.admin.query(`ALTER POLICY tenant_a ON docs USING (tenant = 'b')`);
    const { rows } = await db.admin.query(
      `SELECT needs_reinit, reason FROM pgtrickle.pgt_stream_tables st
         JOIN LATERAL (SELECT e.reason FROM pgtrickle.pgt_ddl_events e WHERE e.pgt_id = st.pgt_id
                        ORDER BY e.event_id DESC LIMIT 1) e ON true
        WHERE st.pgt_name = 'by_tenant'`,
    );
    expect(rows).toEqual([
      { needs_reinit: true, reason: 'upstream table altered: public.docs (row-level security changed)' },
    ]);
    await mine.query(`SELECT pgtrickle.refresh_stream_table('by_tenant')`);
    expect(await lastAction(mine, 'by_tenant')).toBe('REINITIALIZE');
    expect(await tenants('by_tenant')).toEqual(['b']);
    expect(await divergence(mine, 'by_tenant')).toBe(0);
  });

  it('rebuilds it when a policy is created or row-level security is disabled, through the fingerprint check', async () => {
    await db.admin.query(
      'ALTER EVENT TRIGGER pgtrickle_ddl_end DISABLE; ALTER EVENT TRIGGER pgtrickle_sql_drop DISABLE',
    );
    try {
      await db.admin.query(`CREATE POLICY tenant_a_too ON docs FOR SELECT TO ${owner} USING (tenant = 'a')`);
      const created = await db.admin.query(
        'SELECT stream_table, reason FROM pgtrickle._check_ddl() ORDER BY 1',
      );
      expect(created.rows).toEqual([
        {
          stream_table: 'public.by_tenant',
          reason: 'upstream table altered: public.docs (row-level security changed)',
        },
        {
          stream_table: 'public.rows_seen',
          reason: 'upstream table altered: public.docs (row-level security changed)',
        },
      ]);
      await mine.query(`SELECT pgtrickle.refresh_stream_table('by_tenant')`);
      expect(await tenants('by_tenant')).toEqual(['a', 'b']);
      expect(await divergence(mine, 'by_tenant')).toBe(0);

      await db.admin.query('ALTER TABLE docs DISABLE ROW LEVEL SECURITY');
      const disabled = await db.admin.query('SELECT stream_table FROM pgtrickle._check_ddl() ORDER BY 1');
      expect(disabled.rows).toEqual([
        { stream_table: 'public.by_tenant' },
        { stream_table: 'public.rows_seen' },
      ]);
      await db.admin.query(`INSERT INTO docs VALUES (43, 'c', 43)`);
      for (const st of ['by_tenant', 'rows_seen']) {
        await mine.query('SELECT pgtrickle.refresh_stream_table($1)', [st]);
        expect(await lastAction(mine, st)).toBe('REINITIALIZE');
        expect(await tenants(st)).toEqual(['a', 'b', 'c']);
        expect(await divergence(mine, st)).toBe(0);
      }
      // Without row-level security the compiled plan applies deltas again.
      await makeDifferential(mine, 'rows_seen');
      await db.admin.query(`UPDATE docs SET v = v + 1 WHERE id < 10`);
      await mine.query(`SELECT pgtrickle.refresh_stream_table('rows_seen')`);
      expect(await lastAction(mine, 'rows_seen')).toBe('DIFFERENTIAL');
      expect(await divergence(mine, 'rows_seen')).toBe(0);
    } finally {
      await db.admin.query(
        'ALTER EVENT TRIGGER pgtrickle_ddl_end ENABLE; ALTER EVENT TRIGGER pgtrickle_sql_drop ENABLE',
      );
    }
  });
});
