import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { divergence, migratedDatabase, pgError, type TestDb } from '../support/db.js';

describe('write_and_refresh and history retention', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`CREATE TABLE acct (id int PRIMARY KEY, balance int);
      INSERT INTO acct VALUES (1, 10), (2, 20);
      SELECT pgtrickle.create_stream_table('total', 'SELECT sum(acct.balance) AS s FROM acct');`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('lets the caller read its own write in the same call', async () => {
    const { rows } = await db.admin.query(
      `SELECT pgtrickle.write_and_refresh('UPDATE acct SET balance = balance + 5', 'total') AS n`,
    );
    expect(rows).toEqual([{ n: '2' }]);
    expect((await db.admin.query('SELECT s FROM total')).rows).toEqual([{ s: '40' }]);
    expect(await divergence(db.admin, 'total')).toBe(0);
  });

  it('does neither the write nor the refresh when the DML fails', async () => {
    const before = (await db.admin.query('SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history'))
      .rows[0].n;
    const err = await pgError(
      db.admin.query(`SELECT pgtrickle.write_and_refresh('UPDATE acct SET balance = balance / 0', 'total')`),
    );
    expect(err.code).toBe('22012');
    const after = (await db.admin.query('SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history'))
      .rows[0].n;
    expect(after).toBe(before);
  });

  it('deletes refresh history older than history_retention_days', async () => {
    await db.admin.query(`INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, start_time, action, status, initiated_by)
      SELECT pgtrickle._resolve('total'), now() - interval '3 days', 'FULL', 'COMPLETED', 'SCHEDULER'`);
    const recent = (
      await db.admin.query(
        "SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history WHERE start_time > now() - interval '1 hour'",
      )
    ).rows[0].n;
    await db.admin.query(`SET pgtrickle.history_retention_days = 1`);
    const { rows } = await db.admin.query('SELECT pgtrickle.cleanup_history() AS n');
    await db.admin.query('RESET pgtrickle.history_retention_days');
    expect(rows).toEqual([{ n: '1' }]);
    const left = (await db.admin.query('SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history'))
      .rows[0].n;
    expect(left).toBe(recent);
  });
});
