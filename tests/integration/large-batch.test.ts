// A delta statement over several sources has a second form for large batches of changes
// (migration 0012): its generated function counts the pending changes up to
// pgtrickle.large_delta_rows and from there reads the buffers through pgtrickle._pending_many
// (or _pending_few, for small tables).
// Both forms keep the oracle (I5); the setting decides which one a refresh runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  divergence,
  lastAction,
  makeDifferential,
  migratedDatabase,
  notices,
  pgError,
  type TestDb,
} from '../support/db.js';

describe('delta statements for large batches of changes', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`
      CREATE TABLE lb_customers (id int PRIMARY KEY, region text NOT NULL);
      CREATE TABLE lb_orders (id int PRIMARY KEY, cid int, amount numeric);
      INSERT INTO lb_customers SELECT g, 'r' || (g % 7) FROM generate_series(1, 200) g;
      INSERT INTO lb_orders SELECT g, 1 + g % 250, g % 100 FROM generate_series(1, 5000) g;`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  const refresh = async (name: string, largeRows: number) => {
    await db.admin.query(`SET pgtrickle.large_delta_rows = ${largeRows}`);
    await db.admin.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
    await db.admin.query('RESET pgtrickle.large_delta_rows');
    expect(await lastAction(db.admin, name)).toBe('DIFFERENTIAL');
    expect(await divergence(db.admin, name)).toBe(0);
  };
  const body = async (name: string) =>
    (
      await db.admin.query(
        `SELECT p.prosrc FROM pg_proc p JOIN pgtrickle.pgt_stream_tables s ON p.proname = 'st_' || s.pgt_id
          WHERE s.pgt_name = $1 AND p.pronamespace = 'pgtrickle_delta'::regnamespace`,
        [name],
      )
    ).rows[0]?.prosrc as string;

  it('gives a join both forms, and a refresh keeps the oracle whichever form it runs', async () => {
    await db.admin.query('SELECT pgtrickle.create_stream_table($1, $2)', [
      'lb_join',
      'SELECT c.region, sum(o.amount) AS total, count(*) AS n FROM lb_orders o JOIN lb_customers c ON o.cid = c.id GROUP BY c.region',
    ]);
    const outcome = await makeDifferential(db.admin, 'lb_join');
    expect(outcome.mode).toBe('DIFFERENTIAL');
    const source = await body('lb_join');
    expect(source).toMatch(/pgtrickle\._pending_(many|few)\(NULL::pgtrickle_changes\./);
    expect(source).toContain('>= __pgt_many THEN');
    // Orders whose customer does not exist yet, then the customer: rows join across batches.
    await db.admin.query(`UPDATE lb_orders SET amount = amount + 1 WHERE id % 3 = 0;
      DELETE FROM lb_orders WHERE id % 11 = 0; INSERT INTO lb_customers VALUES (201, 'r9'), (230, 'r9')`);
    await refresh('lb_join', 0);
    await db.admin.query(`UPDATE lb_customers SET region = 'r1' WHERE id % 5 = 0;
      INSERT INTO lb_orders SELECT g, 200 + g % 40, 3 FROM generate_series(5001, 5400) g`);
    await refresh('lb_join', 1000);
    await db.admin.query(
      `DELETE FROM lb_customers WHERE id IN (201, 3); UPDATE lb_orders SET cid = cid + 1 WHERE id % 7 = 0`,
    );
    await refresh('lb_join', 0);
  });

  it('explains the statement a refresh would run now, saying when it is the one for large batches', async () => {
    const explain = async (largeRows: number) => {
      await db.admin.query(`SET pgtrickle.large_delta_rows = ${largeRows}`);
      const said = await notices(db.admin, () =>
        db.admin.query("SELECT pgtrickle.explain_st('lb_join') AS sql"),
      );
      await db.admin.query('RESET pgtrickle.large_delta_rows');
      return said;
    };
    await db.admin.query('UPDATE lb_orders SET amount = amount + 1 WHERE id % 50 = 0');
    const large = await explain(0);
    expect(large.result.rows[0].sql).toMatch(/pgtrickle\._pending_(many|few)\(/);
    expect(large.notices.join('\n')).toContain('this is its statement for large batches');
    const small = await explain(1000);
    expect(small.result.rows[0].sql).not.toContain('_pending_');
    expect(small.notices).toEqual([]);
    await refresh('lb_join', 1000);
  });

  it('keeps one form for a statement over one source', async () => {
    await db.admin.query('SELECT pgtrickle.create_stream_table($1, $2)', [
      'lb_single',
      'SELECT o.cid, count(*) AS n FROM lb_orders o GROUP BY o.cid',
    ]);
    expect((await makeDifferential(db.admin, 'lb_single')).mode).toBe('DIFFERENTIAL');
    expect(await body('lb_single')).not.toContain('_pending_');
    await db.admin.query('UPDATE lb_orders SET cid = cid % 50 WHERE id % 4 = 0');
    await refresh('lb_single', 0);
  });

  it('consumes a transaction that started first but committed last exactly once in the form for large batches (I2)', async () => {
    await db.admin.query(`CREATE TABLE lb_a (id int PRIMARY KEY, k int); CREATE TABLE lb_b (k int PRIMARY KEY, v text);
      INSERT INTO lb_b VALUES (1, 'one'), (2, 'two')`);
    await db.admin.query('SELECT pgtrickle.create_stream_table($1, $2)', [
      'lb_late',
      'SELECT lb_a.id, lb_b.v FROM lb_a JOIN lb_b ON lb_a.k = lb_b.k',
    ]);
    expect((await makeDifferential(db.admin, 'lb_late')).mode).toBe('DIFFERENTIAL');
    // The first refresh after a plan is installed reinitializes.
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('lb_late')`);
    const early = await db.connect();
    const late = await db.connect();
    await early.query('BEGIN');
    await early.query('INSERT INTO lb_a VALUES (1, 1)');
    await late.query('BEGIN');
    await late.query('INSERT INTO lb_a VALUES (2, 2)');
    await late.query('COMMIT');
    await refresh('lb_late', 0);
    await early.query('COMMIT');
    await refresh('lb_late', 0);
    const consumed = await db.admin.query<{ n: string }>(
      `SELECT changes_consumed AS n FROM pgtrickle.pgt_refresh_history
        WHERE pgt_id = pgtrickle._resolve('lb_late') AND action = 'DIFFERENTIAL' ORDER BY refresh_id`,
    );
    expect(consumed.rows.map((r) => Number(r.n)).slice(-2)).toEqual([1, 1]);
    expect((await db.admin.query('SELECT id, v FROM lb_late ORDER BY id')).rows).toEqual([
      { id: 1, v: 'one' },
      { id: 2, v: 'two' },
    ]);
  });

  it('refuses a row type that is not a change buffer', async () => {
    const err = await pgError(
      db.admin.query("SELECT * FROM pgtrickle._pending_many(NULL::lb_orders, '0'::xid8)"),
    );
    expect(err.code).toBe('22023');
    expect(err.message).toContain('is not the row type of a change buffer');
  });
});
