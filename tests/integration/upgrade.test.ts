// Upgrading a catalog that already holds differential stream tables: migration 0008 moves their
// delta statements into generated functions, and their next refreshes apply deltas through them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planStreamTable } from '../../cluster/planner/install.js';
import { migrate } from '../../sql/migrate.js';
import { divergence, lastAction, migratedDatabase, type TestDb } from '../support/db.js';

describe('upgrading to cached delta plans (0008)', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase({ upTo: 7 });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('gives a plan installed before it a function, and refreshes it differentially after', async () => {
    const client = db.admin;
    await client.query(`CREATE TABLE up_src (id int PRIMARY KEY, g int, v int);
      INSERT INTO up_src SELECT i, i % 3, i FROM generate_series(1, 20) i`);
    await client.query(
      `SELECT pgtrickle.create_stream_table('up_st', 'SELECT up_src.g, sum(up_src.v) AS s FROM up_src GROUP BY up_src.g')`,
    );
    const id = (await client.query(`SELECT pgtrickle._resolve('up_st')::text AS id`)).rows[0].id;
    expect((await planStreamTable(client, id)).mode).toBe('DIFFERENTIAL');
    await client.query(`SELECT pgtrickle.refresh_stream_table('up_st')`);
    await client.query('UPDATE up_src SET v = v + 1 WHERE id < 5');

    const result = await migrate(client);
    expect(result.applied.map((m) => m.version)).toContain(8);
    const fn = await client.query(
      `SELECT to_regproc('pgtrickle_delta.st_' || $1::text) IS NOT NULL AS present`,
      [id],
    );
    expect(fn.rows).toEqual([{ present: true }]);

    await client.query(`SELECT pgtrickle.refresh_stream_table('up_st')`);
    expect(await lastAction(client, 'up_st')).toBe('DIFFERENTIAL');
    expect(await divergence(client, 'up_st')).toBe(0);
  });
});
