// Differential refresh of LEFT, RIGHT and FULL joins, checked against the oracle (I5) after
// every refresh: NULL join keys, key updates, duplicates, aggregates over them and join chains.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { divergence, lastAction, makeDifferential, migratedDatabase, type TestDb } from '../support/db.js';

describe('differential refresh of outer joins', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  const create = async (name: string, query: string) => {
    await db.admin.query('SELECT pgtrickle.create_stream_table($1, $2)', [name, query]);
    const outcome = await makeDifferential(db.admin, name);
    expect(outcome.mode, outcome.mode === 'FULL' ? outcome.reason : '').toBe('DIFFERENTIAL');
    expect(await divergence(db.admin, name)).toBe(0);
  };
  const step = async (name: string, dml: string) => {
    await db.admin.query(dml);
    await db.admin.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
    expect(await lastAction(db.admin, name)).toBe('DIFFERENTIAL');
    expect(await divergence(db.admin, name)).toBe(0);
  };
  const rows = async (sql: string) => (await db.admin.query(sql)).rows;

  it.each([
    ['left', 'LEFT', 'nk_left_l', 'nk_left_r'],
    ['right', 'RIGHT', 'nk_right_r', 'nk_right_l'],
    ['full', 'FULL', 'nk_full_l', 'nk_full_r'],
  ])(
    '%s join: a NULL key null-extends, a matching key pairs, a delete removes',
    async (kind, join, preserved, other) => {
      const [l, r] = kind === 'right' ? [other, preserved] : [preserved, other];
      await db.admin.query(`CREATE TABLE ${l} (id int PRIMARY KEY, k int); CREATE TABLE ${r} (id int PRIMARY KEY, k int, v text);
      INSERT INTO ${r} VALUES (1, 1, 'one'), (2, NULL, 'null')`);
      const st = `oj_null_${kind}`;
      await create(st, `SELECT ${l}.id, ${r}.v FROM ${l} ${join} JOIN ${r} ON ${l}.k = ${r}.k`);
      await step(st, `INSERT INTO ${l} VALUES (1, NULL)`);
      await step(st, `UPDATE ${l} SET k = 1 WHERE id = 1`);
      await step(st, `DELETE FROM ${l} WHERE id = 1`);
      await step(st, `INSERT INTO ${r} VALUES (3, NULL, 'again'); INSERT INTO ${l} VALUES (2, NULL), (3, 1)`);
      await step(st, `UPDATE ${r} SET k = NULL WHERE id = 1`);
      await step(st, `UPDATE ${r} SET k = 1 WHERE id = 2; DELETE FROM ${l} WHERE id = 2`);
    },
  );

  it('keeps a LEFT join row unmatched-then-matched when a key moves and its old partner is deleted in one cycle', async () => {
    await db.admin.query(`CREATE TABLE mv_l (id int PRIMARY KEY, k int); CREATE TABLE mv_r (id int PRIMARY KEY, k int, v text);
      INSERT INTO mv_l VALUES (1, 10), (2, 20); INSERT INTO mv_r VALUES (1, 10, 'ten'), (2, 20, 'twenty'), (3, 30, 'thirty')`);
    await create('oj_move', 'SELECT mv_l.id, mv_r.v FROM mv_l LEFT JOIN mv_r ON mv_l.k = mv_r.k');
    await step('oj_move', 'UPDATE mv_l SET k = 30 WHERE id = 1; DELETE FROM mv_r WHERE k = 10');
    await step('oj_move', 'UPDATE mv_r SET k = 99 WHERE id = 3; DELETE FROM mv_l WHERE id = 2');
    expect(await rows('SELECT id, v FROM oj_move')).toEqual([{ id: 1, v: null }]);
  });

  it('counts duplicates on both sides of a FULL join', async () => {
    await db.admin.query(`CREATE TABLE dup_l (k int, x text); CREATE TABLE dup_r (k int, y text);
      INSERT INTO dup_l VALUES (1, 'a'), (1, 'a'), (2, 'b'), (NULL, 'n'), (NULL, 'n');
      INSERT INTO dup_r VALUES (1, 'p'), (1, 'p'), (3, 'q'), (NULL, 'm')`);
    await create('oj_dup', 'SELECT dup_l.x, dup_r.y FROM dup_l FULL JOIN dup_r ON dup_l.k = dup_r.k');
    await step('oj_dup', `DELETE FROM dup_r WHERE ctid = (SELECT min(ctid) FROM dup_r WHERE k = 1)`);
    await step('oj_dup', `DELETE FROM dup_r WHERE k = 1`);
    await step(
      'oj_dup',
      `INSERT INTO dup_r VALUES (2, 'z'), (2, 'z'); INSERT INTO dup_l VALUES (3, 'c'), (1, 'a')`,
    );
    await step('oj_dup', `DELETE FROM dup_l WHERE ctid = (SELECT min(ctid) FROM dup_l WHERE k = 1)`);
    await step('oj_dup', `UPDATE dup_l SET k = 3 WHERE k = 1; UPDATE dup_r SET k = NULL WHERE k = 3`);
    await step('oj_dup', `DELETE FROM dup_l; INSERT INTO dup_r VALUES (NULL, 'm')`);
  });

  it('maintains a count per customer over a LEFT join (TPC-H Q13 shape)', async () => {
    await db.admin.query(`CREATE TABLE q13_c (id int PRIMARY KEY, name text); CREATE TABLE q13_o (id int PRIMARY KEY, cid int);
      INSERT INTO q13_c SELECT i, 'c' || i FROM generate_series(1, 20) i;
      INSERT INTO q13_o SELECT i, i % 7 + 1 FROM generate_series(1, 30) i`);
    await create(
      'oj_q13',
      'SELECT c.id, count(o.id) AS n FROM q13_c c LEFT JOIN q13_o o ON o.cid = c.id GROUP BY c.id',
    );
    await step('oj_q13', 'DELETE FROM q13_o WHERE cid = 3');
    await step('oj_q13', 'INSERT INTO q13_o VALUES (100, 15), (101, 15), (102, NULL)');
    await step('oj_q13', 'UPDATE q13_o SET cid = 20 WHERE cid = 15; DELETE FROM q13_c WHERE id = 1');
    await step('oj_q13', 'INSERT INTO q13_c VALUES (21, NULL); UPDATE q13_o SET cid = 21 WHERE id = 102');
    expect(await rows('SELECT n FROM oj_q13 WHERE id IN (3, 15, 21) ORDER BY id')).toEqual([
      { n: '0' },
      { n: '0' },
      { n: '1' },
    ]);
  });

  it('chains an INNER and a LEFT join over three tables', async () => {
    await db.admin.query(`CREATE TABLE ch_c (id int PRIMARY KEY, region text); CREATE TABLE ch_o (id int PRIMARY KEY, cid int);
      CREATE TABLE ch_l (oid int, item text);
      INSERT INTO ch_c VALUES (1, 'n'), (2, 's'), (3, 'e');
      INSERT INTO ch_o VALUES (10, 1), (11, 1), (12, 2), (13, NULL);
      INSERT INTO ch_l VALUES (10, 'x'), (10, 'y'), (12, 'z')`);
    await create(
      'oj_chain',
      'SELECT ch_c.region, ch_o.id, ch_l.item FROM ch_c JOIN ch_o ON ch_o.cid = ch_c.id LEFT JOIN ch_l ON ch_l.oid = ch_o.id',
    );
    await step('oj_chain', `INSERT INTO ch_l VALUES (11, 'w'); DELETE FROM ch_l WHERE item = 'z'`);
    await step(
      'oj_chain',
      `UPDATE ch_o SET cid = 3 WHERE id = 12; UPDATE ch_c SET region = 'w' WHERE id = 1`,
    );
    await step(
      'oj_chain',
      `UPDATE ch_o SET id = 14 WHERE id = 10; INSERT INTO ch_l VALUES (14, 'v'), (NULL, 'n')`,
    );
    await step('oj_chain', `DELETE FROM ch_c WHERE id = 1; UPDATE ch_o SET cid = 2 WHERE id = 13`);
    await create(
      'oj_chain_nested',
      'SELECT ch_c.id, ch_o.id AS oid, ch_l.item FROM ch_c LEFT JOIN (ch_o JOIN ch_l ON ch_l.oid = ch_o.id) ON ch_o.cid = ch_c.id',
    );
    await step(
      'oj_chain_nested',
      `INSERT INTO ch_l VALUES (13, 'u'); UPDATE ch_o SET cid = NULL WHERE id = 11`,
    );
    await step('oj_chain_nested', `DELETE FROM ch_l WHERE oid = 14; INSERT INTO ch_c VALUES (4, 'x')`);
  });

  it('refuses USING in an outer join by name, and stays correct in FULL mode', async () => {
    await db.admin.query(`CREATE TABLE us_l (k int, x int); CREATE TABLE us_r (k int, y int);
      INSERT INTO us_l VALUES (1, 1); INSERT INTO us_r VALUES (2, 2)`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('oj_using',
      'SELECT us_l.x, us_r.y FROM us_l LEFT JOIN us_r USING (k)')`);
    const outcome = await makeDifferential(db.admin, 'oj_using');
    expect(outcome).toEqual({
      mode: 'FULL',
      reason: 'differential refresh does not support USING or NATURAL in a LEFT OUTER JOIN',
    });
    await db.admin.query('INSERT INTO us_r VALUES (1, 3)');
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('oj_using')`);
    expect(await divergence(db.admin, 'oj_using')).toBe(0);
  });
});
