import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { divergence, footprint, migratedDatabase, notices, pgError, type TestDb } from '../support/db.js';

describe('SQL API', () => {
  let db: TestDb;
  let sql: pg.Client;

  beforeAll(async () => {
    db = await migratedDatabase();
    sql = db.admin;
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('creates a stream table that holds its query result, and refreshes it', async () => {
    await sql.query(
      `CREATE TABLE orders (id int PRIMARY KEY, region text NOT NULL, amount numeric NOT NULL)`,
    );
    await sql.query(`INSERT INTO orders SELECT g, 'r' || (g % 3), g FROM generate_series(1, 30) g`);
    await sql.query(`SELECT pgtrickle.create_stream_table('revenue',
      'SELECT region, sum(amount) AS total, count(*) AS n FROM orders GROUP BY region', schedule => '30s')`);
    expect(await divergence(sql, 'revenue')).toBe(0);
    await sql.query(`INSERT INTO orders VALUES (100, 'r9', 5); UPDATE orders SET amount = 0 WHERE id < 5;
                     DELETE FROM orders WHERE id = 7`);
    expect(await divergence(sql, 'revenue')).toBeGreaterThan(0);
    await sql.query(`SELECT pgtrickle.refresh_stream_table('revenue')`);
    expect(await divergence(sql, 'revenue')).toBe(0);
    const { rows } = await sql.query(`SELECT * FROM pgtrickle.pgt_status() WHERE name = 'public.revenue'`);
    expect(rows[0]).toMatchObject({
      status: 'ACTIVE',
      refresh_mode: 'AUTO',
      is_populated: true,
      schedule: '30s',
    });
  });

  it('resolves the defining query through a view and records the base table as a source', async () => {
    await sql.query(`CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 10`);
    await sql.query(`SELECT pgtrickle.create_stream_table('big_by_region',
      'SELECT region, count(*) AS n FROM big_orders GROUP BY region')`);
    const { rows } = await sql.query<{ src: string; source_type: string; cdc_mode: string }>(
      `SELECT source_relid::regclass::text AS src, source_type, cdc_mode FROM pgtrickle.pgt_dependencies
        WHERE pgt_id = pgtrickle._resolve('big_by_region') ORDER BY 1`,
    );
    expect(rows).toEqual([
      { src: 'big_orders', source_type: 'VIEW', cdc_mode: 'NONE' },
      { src: 'orders', source_type: 'TABLE', cdc_mode: 'TRIGGER' },
    ]);
    await sql.query(`UPDATE orders SET amount = amount + 20 WHERE id % 2 = 0`);
    await sql.query(`SELECT pgtrickle.refresh_stream_table('big_by_region')`);
    expect(await divergence(sql, 'big_by_region')).toBe(0);
  });

  it('works end to end with a quoted, unicode stream table name and a source column named select', async () => {
    await sql.query(`CREATE SCHEMA "Odd; schema$$"`);
    await sql.query(`CREATE TABLE "Odd; schema$$"."src 'x'" ("select" int, "from" text, v int)`);
    await sql.query(`INSERT INTO "Odd; schema$$"."src 'x'" VALUES (1, 'a', 1), (1, 'b', 2), (2, 'c', 3)`);
    const name = `"Odd; schema$$"."Weird ""name"" ü"`;
    await sql.query(
      `SELECT pgtrickle.create_stream_table($1,
        'SELECT "select", sum(v) AS "sum; drop table x", max("from") AS "from" FROM "Odd; schema$$"."src ''x''" GROUP BY "select"')`,
      [name],
    );
    await sql.query(
      `INSERT INTO "Odd; schema$$"."src 'x'" VALUES (3, 'd', 4); DELETE FROM "Odd; schema$$"."src 'x'" WHERE "select" = 2`,
    );
    await sql.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
    expect(await divergence(sql, name)).toBe(0);
    const { rows } = await sql.query(`SELECT * FROM "Odd; schema$$"."Weird ""name"" ü" ORDER BY 1`);
    expect(rows).toEqual([
      { select: 1, 'sum; drop table x': '3', from: 'b' },
      { select: 3, 'sum; drop table x': '4', from: 'd' },
    ]);
    const status = await sql.query(`SELECT name FROM pgtrickle.pgt_status() WHERE name LIKE '%Weird%'`);
    expect(status.rows).toEqual([{ name: `"Odd; schema$$"."Weird ""name"" ü"` }]);
  });

  it('rejects invalid SQL with PostgreSQL’s own error and leaves nothing behind', async () => {
    const before = await footprint(sql);
    const syntax = await pgError(
      sql.query(`SELECT pgtrickle.create_stream_table('bad', 'SELEC region FROM orders')`),
    );
    expect(syntax.code).toBe('42601');
    expect(syntax.message).toBe('syntax error at or near "SELEC"');
    const missing = await pgError(
      sql.query(`SELECT pgtrickle.create_stream_table('bad', 'SELECT * FROM no_such')`),
    );
    expect(missing.code).toBe('42P01');
    expect(missing.message).toBe('relation "no_such" does not exist');
    const column = await pgError(
      sql.query(`SELECT pgtrickle.create_stream_table('bad', 'SELECT nope FROM orders')`),
    );
    expect(column.code).toBe('42703');
    expect(await footprint(sql)).toEqual(before);
    const { rows } = await sql.query(`SELECT to_regclass('bad') AS r`);
    expect(rows[0].r).toBeNull();
  });

  it('rejects a bad schedule, refresh mode or duplicate name with a hint', async () => {
    const schedule = await pgError(
      sql.query(`SELECT pgtrickle.create_stream_table('x', 'SELECT 1 AS one', schedule => 'often')`),
    );
    expect(schedule.code).toBe('22023');
    expect(schedule.message).toBe('invalid schedule "often"');
    expect(schedule.hint).toMatch(/30s/);
    const mode = await pgError(
      sql.query(`SELECT pgtrickle.create_stream_table('x', 'SELECT 1 AS one', refresh_mode => 'LAZY')`),
    );
    expect(mode.message).toBe('invalid refresh mode "LAZY"');
    const dup = await pgError(
      sql.query(`SELECT pgtrickle.create_stream_table('revenue', 'SELECT 1 AS one')`),
    );
    expect(dup.code).toBe('42P07');
    expect(dup.message).toBe('stream table "revenue" already exists');
    const unknown = await pgError(sql.query(`SELECT pgtrickle.refresh_stream_table('nope')`));
    expect(unknown.code).toBe('42P01');
    expect(unknown.message).toBe('stream table "nope" does not exist');
  });

  it('refuses a cron field out of range, naming the field', async () => {
    const err = await pgError(sql.query(`SELECT pgtrickle._normalize_schedule('99 * * * *')`));
    expect(err.message).toBe('invalid schedule "99 * * * *": field 1 is out of range');
    expect(err.hint).toBe('Values of that field go from 0 to 59.');
  });

  it('accepts durations, cron expressions and calculated as schedules', async () => {
    const { rows } = await sql.query<{ s: string }>(
      `SELECT pgtrickle._normalize_schedule(x) AS s FROM unnest(ARRAY['500ms', '1h30m', '*/5  * * * *', '@Hourly', 'calculated', '0 30 9 * * 1-5', '0 0 1,15 * *']) x`,
    );
    expect(rows.map((r) => r.s)).toEqual([
      '500ms',
      '1h30m',
      '*/5 * * * *',
      '@hourly',
      'CALCULATED',
      '0 30 9 * * 1-5',
      '0 0 1,15 * *',
    ]);
  });

  it('alters schedule, mode and status, and replaces the query', async () => {
    await sql.query(
      `SELECT pgtrickle.alter_stream_table('revenue', schedule => '5m', status => 'suspended')`,
    );
    let { rows } = await sql.query(
      `SELECT schedule, status FROM pgtrickle.pgt_status() WHERE name = 'public.revenue'`,
    );
    expect(rows[0]).toEqual({ schedule: '5m', status: 'SUSPENDED' });
    await sql.query(`SELECT pgtrickle.alter_stream_table('revenue',
      query => 'SELECT region, max(amount) AS top FROM orders GROUP BY region', status => 'active')`);
    expect(await divergence(sql, 'revenue')).toBe(0);
    ({ rows } = await sql.query(`SELECT column_name FROM information_schema.columns
      WHERE table_name = 'revenue' ORDER BY ordinal_position`));
    expect(rows.map((r) => r.column_name)).toEqual(['region', 'top']);
  });

  it('refuses a cycle between stream tables', async () => {
    await sql.query(`SELECT pgtrickle.create_stream_table('c1', 'SELECT region FROM orders')`);
    await sql.query(`SELECT pgtrickle.create_stream_table('c2', 'SELECT region FROM c1')`);
    const err = await pgError(
      sql.query(`SELECT pgtrickle.alter_stream_table('c1', query => 'SELECT region FROM c2')`),
    );
    expect(err.message).toBe('stream table "c1" cannot read public.c2: that would make a cycle');
    await sql.query(`SELECT pgtrickle.drop_stream_table('c1', cascade => true)`);
  });

  it('reports a concurrent refresh as skipped with a NOTICE instead of waiting', async () => {
    const other = await db.connect();
    await other.query('BEGIN');
    await other.query(`SELECT pgtrickle.refresh_stream_table('revenue')`);
    const { notices: seen } = await notices(sql, () =>
      sql.query(`SELECT pgtrickle.refresh_stream_table('revenue')`),
    );
    await other.query('COMMIT');
    expect(seen).toEqual(['refresh skipped for "revenue": another refresh is in progress']);
  });

  it('refuses a refresh with a stale fencing epoch', async () => {
    const err = await pgError(
      sql.query(`SELECT pgtrickle._refresh(pgtrickle._resolve('revenue'), 41, 'SCHEDULER')`),
    );
    expect(err.code).toBe('PT001');
    expect(err.message).toMatch(/^stale fencing epoch for stream table "revenue"/);
  });
});
