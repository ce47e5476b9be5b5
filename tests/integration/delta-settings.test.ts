// The planner settings of delta statements (migrations 0014, 0015): the generated function plans
// its statement generically and at random_page_cost 1.1, explain_st explains it under the same
// settings, and functions installed before 0015 get the setting from the migration.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../sql/migrate.js';
import { divergence, lastAction, makeDifferential, migratedDatabase, type TestDb } from '../support/db.js';

const settings = async (db: TestDb, name: string) =>
  (
    await db.admin.query<{ proconfig: string[] }>(
      `SELECT proconfig FROM pg_proc
        WHERE oid = format('pgtrickle_delta.%I(pg_snapshot, xid8)', 'st_' || pgtrickle._resolve($1))::regprocedure`,
      [name],
    )
  ).rows[0]?.proconfig;

describe('planner settings of delta statements', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase({ upTo: 14 });
    await db.admin.query(`
      CREATE TABLE ds_orders (id int PRIMARY KEY, cid int NOT NULL, amount numeric);
      CREATE TABLE ds_customers (id int PRIMARY KEY, region text NOT NULL);
      INSERT INTO ds_customers SELECT g, 'r' || (g % 5) FROM generate_series(1, 100) g;
      INSERT INTO ds_orders SELECT g, 1 + g % 100, g FROM generate_series(1, 1000) g;
      SELECT pgtrickle.create_stream_table('ds_before', 'SELECT o.id, c.region FROM ds_orders o JOIN ds_customers c ON c.id = o.cid');`);
    await makeDifferential(db.admin, 'ds_before');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('gives the functions installed before migration 0015 random_page_cost 1.1', async () => {
    expect(await settings(db, 'ds_before')).toEqual([
      'search_path=pg_catalog, pg_temp',
      'plan_cache_mode=force_generic_plan',
    ]);
    await migrate(db.admin);
    expect(await settings(db, 'ds_before')).toEqual([
      'search_path=pg_catalog, pg_temp',
      'plan_cache_mode=force_generic_plan',
      'random_page_cost=1.1',
    ]);
    await db.admin.query('UPDATE ds_orders SET amount = amount + 1 WHERE id <= 10');
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('ds_before')`);
    expect(await lastAction(db.admin, 'ds_before')).toBe('DIFFERENTIAL');
    expect(await divergence(db.admin, 'ds_before')).toBe(0);
  });

  it('installs new functions with it, and explain_st plans under the function settings, leaving the session as it was', async () => {
    await db.admin.query(
      `SELECT pgtrickle.create_stream_table('ds_after', 'SELECT c.region, count(*) AS n FROM ds_orders o JOIN ds_customers c ON c.id = o.cid GROUP BY c.region')`,
    );
    await makeDifferential(db.admin, 'ds_after');
    expect(await settings(db, 'ds_after')).toContain('random_page_cost=1.1');
    await db.admin.query('UPDATE ds_customers SET region = region || $1 WHERE id = 3', ['x']);
    const plan = JSON.parse(
      (await db.admin.query(`SELECT pgtrickle.explain_st('ds_after', with_analyze => true) AS p`)).rows[0].p,
    );
    expect(JSON.stringify(plan)).toMatch(/pg_snapshot_xmin\(\$1\)/);
    const session = await db.admin.query(
      `SELECT current_setting('random_page_cost') AS rpc, current_setting('plan_cache_mode') AS mode`,
    );
    expect(session.rows).toEqual([{ rpc: '4', mode: 'auto' }]);
    expect((await db.admin.query('SELECT name FROM pg_prepared_statements')).rows).toEqual([]);
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('ds_after')`);
    expect(await divergence(db.admin, 'ds_after')).toBe(0);
  });
});
