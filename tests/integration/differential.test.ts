// Named cases of differential refresh, each one a behaviour a user relies on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  divergence,
  lastAction,
  makeDifferential,
  migratedDatabase,
  notices,
  type TestDb,
} from '../support/db.js';

describe('differential refresh', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  const refresh = (name: string) => db.admin.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
  const create = async (name: string, query: string) => {
    await db.admin.query('SELECT pgtrickle.create_stream_table($1, $2)', [name, query]);
    const outcome = await makeDifferential(db.admin, name);
    expect(outcome.mode).toBe('DIFFERENTIAL');
  };
  const step = async (name: string, dml: string) => {
    await db.admin.query(dml);
    await refresh(name);
    expect(await lastAction(db.admin, name)).toBe('DIFFERENTIAL');
    expect(await divergence(db.admin, name)).toBe(0);
  };

  it('leaves no stale row when a join key is updated and its old partner deleted in one cycle', async () => {
    await db.admin.query(`CREATE TABLE cd_l (id int PRIMARY KEY, k int); CREATE TABLE cd_r (id int PRIMARY KEY, k int, v text);
      INSERT INTO cd_l VALUES (1, 10), (2, 20); INSERT INTO cd_r VALUES (1, 10, 'ten'), (2, 20, 'twenty'), (3, 30, 'thirty')`);
    await create('co_delete', 'SELECT cd_l.id, cd_r.v FROM cd_l JOIN cd_r ON cd_l.k = cd_r.k');
    await step('co_delete', `UPDATE cd_l SET k = 30 WHERE id = 1; DELETE FROM cd_r WHERE k = 10`);
    await step('co_delete', `UPDATE cd_r SET k = 99 WHERE id = 3; DELETE FROM cd_l WHERE id = 2`);
    expect((await db.admin.query('SELECT count(*)::int AS n FROM co_delete')).rows).toEqual([{ n: 0 }]);
  });

  it('matches no row on a NULL inner join key, then matches once the key is set, then drops it', async () => {
    await db.admin.query(`CREATE TABLE nk_l (id int PRIMARY KEY, k int); CREATE TABLE nk_r (k int, v text);
      INSERT INTO nk_r VALUES (1, 'one'), (NULL, 'null')`);
    await create('null_inner', 'SELECT nk_l.id, nk_r.v FROM nk_l JOIN nk_r ON nk_l.k = nk_r.k');
    await step('null_inner', 'INSERT INTO nk_l VALUES (1, NULL)');
    expect((await db.admin.query('SELECT count(*)::int AS n FROM null_inner')).rows).toEqual([{ n: 0 }]);
    await step('null_inner', 'UPDATE nk_l SET k = 1 WHERE id = 1');
    expect((await db.admin.query('SELECT id, v FROM null_inner')).rows).toEqual([{ id: 1, v: 'one' }]);
    await step('null_inner', 'DELETE FROM nk_l WHERE id = 1');
    expect((await db.admin.query('SELECT count(*)::int AS n FROM null_inner')).rows).toEqual([{ n: 0 }]);
  });

  it('updates a joined row in place when a non-key column of a source changes', async () => {
    await db.admin.query(`CREATE TABLE ip_o (id int PRIMARY KEY, cid int, amount int); CREATE TABLE ip_c (id int PRIMARY KEY, region text);
      INSERT INTO ip_c VALUES (1, 'north'), (2, 'south'); INSERT INTO ip_o VALUES (1, 1, 10), (2, 2, 20)`);
    await create('in_place', 'SELECT ip_o.amount, ip_c.region FROM ip_o JOIN ip_c ON ip_o.cid = ip_c.id');
    const ctid = async () =>
      (await db.admin.query('SELECT ctid::text AS t FROM in_place WHERE __pgt_k0 = 1')).rows[0].t;
    const before = await ctid();
    await step(
      'in_place',
      `UPDATE ip_o SET amount = 11 WHERE id = 1; UPDATE ip_c SET region = 'west' WHERE id = 2`,
    );
    const { rows } = await db.admin.query(
      `SELECT action, rows_inserted::int, rows_deleted::int FROM pgtrickle.pgt_refresh_history
        WHERE pgt_id = pgtrickle._resolve('in_place') ORDER BY refresh_id DESC LIMIT 1`,
    );
    expect(rows).toEqual([{ action: 'DIFFERENTIAL', rows_inserted: 2, rows_deleted: 2 }]);
    expect(await ctid()).not.toBe(before);
    expect((await db.admin.query('SELECT amount, region FROM in_place ORDER BY amount')).rows).toEqual([
      { amount: 11, region: 'north' },
      { amount: 20, region: 'west' },
    ]);
  });

  it('maintains stream tables whose schema, table, column and own names are hostile', async () => {
    await db.admin.query(`CREATE SCHEMA "s; DROP TABLE x; --";
      CREATE TABLE "s; DROP TABLE x; --"."t ""q"" $$ ü" ("sel""ect" int PRIMARY KEY, "$$ v" int, "'; --" text);
      INSERT INTO "s; DROP TABLE x; --"."t ""q"" $$ ü" VALUES (1, 1, 'a'), (2, 2, 'b')`);
    const queries = [
      `SELECT t."sel""ect", t."$$ v" * 2 AS "x""y", t."'; --" FROM "s; DROP TABLE x; --"."t ""q"" $$ ü" t WHERE t."$$ v" > 0`,
      `SELECT t."'; --", count(*) AS "n;", sum(t."$$ v") AS "$$" FROM "s; DROP TABLE x; --"."t ""q"" $$ ü" t GROUP BY t."'; --"`,
    ];
    for (const [i, query] of queries.entries()) {
      const name = `"s; DROP TABLE x; --"."st ${i} ""$$"" ;"`;
      await create(name, query);
      await step(name, `INSERT INTO "s; DROP TABLE x; --"."t ""q"" $$ ü" VALUES (${3 + i}, 3, 'a')`);
      await step(
        name,
        `UPDATE "s; DROP TABLE x; --"."t ""q"" $$ ü" SET "$$ v" = "$$ v" + 1, "'; --" = 'c' WHERE "sel""ect" = 1`,
      );
      await step(name, `DELETE FROM "s; DROP TABLE x; --"."t ""q"" $$ ü" WHERE "sel""ect" = 2`);
    }
  });

  it('keeps one copy when two identical rows are inserted and one deleted', async () => {
    await db.admin.query('CREATE TABLE twins (x int, y text)');
    await create('twins_st', 'SELECT twins.x, twins.y FROM twins');
    await step('twins_st', `INSERT INTO twins VALUES (1, 'same'), (1, 'same')`);
    expect((await db.admin.query('SELECT count(*)::int AS n FROM twins_st')).rows).toEqual([{ n: 2 }]);
    await step('twins_st', `DELETE FROM twins WHERE ctid = (SELECT min(ctid) FROM twins)`);
    expect((await db.admin.query('SELECT x, y FROM twins_st')).rows).toEqual([{ x: 1, y: 'same' }]);
  });

  it('recomputes in full after a TRUNCATE of a source, then goes on differentially', async () => {
    await db.admin.query(`CREATE TABLE tr (g int, v int); INSERT INTO tr VALUES (1, 1), (2, 2)`);
    await create('tr_sum', 'SELECT tr.g, sum(tr.v) AS s FROM tr GROUP BY tr.g');
    await db.admin.query(`BEGIN; TRUNCATE tr; INSERT INTO tr VALUES (3, 3); COMMIT`);
    await refresh('tr_sum');
    expect(await lastAction(db.admin, 'tr_sum')).toBe('FULL');
    expect(await divergence(db.admin, 'tr_sum')).toBe(0);
    await step('tr_sum', 'INSERT INTO tr VALUES (3, 4)');
  });

  it('recomputes in full when pending changes exceed differential_max_change_ratio', async () => {
    await db.admin.query(`CREATE TABLE ratio (id int PRIMARY KEY, v int);
      INSERT INTO ratio SELECT g, g FROM generate_series(1, 20000) g; ANALYZE ratio`);
    await create('ratio_st', 'SELECT ratio.v % 10 AS m, count(*) AS n FROM ratio GROUP BY ratio.v % 10');
    await step('ratio_st', 'UPDATE ratio SET v = v + 1 WHERE id <= 20');
    await db.admin.query(`UPDATE ratio SET v = v + 1 WHERE id <= 4000`);
    await refresh('ratio_st');
    expect(await lastAction(db.admin, 'ratio_st')).toBe('FULL');
    expect(await divergence(db.admin, 'ratio_st')).toBe(0);
    await db.admin.query(`SET pgtrickle.differential_max_change_ratio = 0.9`);
    await step('ratio_st', 'UPDATE ratio SET v = v + 1 WHERE id <= 4000');
    await db.admin.query('RESET pgtrickle.differential_max_change_ratio');
  });

  it('refreshes a three-level chain of stream tables differentially', async () => {
    await db.admin.query(`CREATE TABLE ch (id int PRIMARY KEY, g int, v int);
      INSERT INTO ch SELECT i, i % 5, i FROM generate_series(1, 50) i`);
    await create('ch1', 'SELECT ch.g, sum(ch.v) AS s, count(*) AS n FROM ch GROUP BY ch.g');
    await create('ch2', 'SELECT ch1.g, ch1.s * 2 AS s2 FROM ch1 WHERE ch1.n > 5');
    await create('ch3', 'SELECT count(*) AS groups, sum(ch2.s2) AS total FROM ch2');
    for (const dml of [
      'UPDATE ch SET v = v + 100 WHERE id % 7 = 0',
      'DELETE FROM ch WHERE g = 3 AND id > 10',
      'INSERT INTO ch SELECT i, 9, i FROM generate_series(100, 120) i',
    ]) {
      await db.admin.query(dml);
      for (const st of ['ch1', 'ch2', 'ch3']) {
        await refresh(st);
        expect(await lastAction(db.admin, st)).toBe('DIFFERENTIAL');
        expect(await divergence(db.admin, st)).toBe(0);
      }
    }
  });

  it('keeps a per-group top 2 by recomputing only the partitions a change touches', async () => {
    await db.admin.query(`CREATE TABLE scores (id int PRIMARY KEY, team int, points int);
      INSERT INTO scores SELECT g, g % 3, (g * 37) % 100 FROM generate_series(1, 30) g`);
    await create(
      'top_two',
      `SELECT t.team, t.id, t.points FROM (SELECT s.team, s.id, s.points,
         row_number() OVER (PARTITION BY s.team ORDER BY s.points DESC, s.id) AS rn FROM scores s) t
       WHERE t.rn <= 2`,
    );
    const versions = async () =>
      (
        await db.admin.query<{ team: number; xmin: string }>(
          'SELECT team, xmin::text AS xmin FROM top_two ORDER BY team, id',
        )
      ).rows;
    const before = await versions();
    // A new leader of team 1: its rows change, the other teams' rows are not rewritten.
    await step('top_two', 'INSERT INTO scores VALUES (100, 1, 1000)');
    const after = await versions();
    expect(after.filter((r) => r.team !== 1)).toEqual(before.filter((r) => r.team !== 1));
    expect(after.filter((r) => r.team === 1)).not.toEqual(before.filter((r) => r.team === 1));
    // A row moving between partitions, a deleted leader, a NULL partition.
    await step('top_two', 'UPDATE scores SET team = 2 WHERE id = 100');
    await step('top_two', 'DELETE FROM scores WHERE id = 100');
    await step('top_two', 'UPDATE scores SET team = NULL WHERE id IN (3, 4, 5)');
  });

  it('falls back to FULL in AUTO mode with a NOTICE naming the construct, and stays correct', async () => {
    await db.admin.query(
      `CREATE TABLE win (id int PRIMARY KEY, v int); INSERT INTO win VALUES (1, 5), (2, 7)`,
    );
    await db.admin.query(`SELECT pgtrickle.create_stream_table('ranked',
      'SELECT win.id, rank() OVER (ORDER BY win.v) AS r FROM win')`);
    const { result, notices: seen } = await notices(db.admin, () => makeDifferential(db.admin, 'ranked'));
    expect(result).toEqual({
      mode: 'FULL',
      reason: 'differential refresh does not support window functions without PARTITION BY',
    });
    expect(seen).toContain(
      'stream table "ranked" is refreshed in FULL mode: differential refresh does not support window functions without PARTITION BY',
    );
    const { rows } = await db.admin.query(
      `SELECT effective_mode, fallback_reason FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'ranked'`,
    );
    expect(rows).toEqual([
      {
        effective_mode: 'FULL',
        fallback_reason: 'differential refresh does not support window functions without PARTITION BY',
      },
    ]);
    await db.admin.query('INSERT INTO win VALUES (3, 1)');
    await refresh('ranked');
    expect(await lastAction(db.admin, 'ranked')).toBe('FULL');
    expect(await divergence(db.admin, 'ranked')).toBe(0);
  });

  it('refreshes in FULL a query that renames the columns of a table by position, and keeps it correct', async () => {
    // Such a query used to compile: a keyed plan then named the renamed key column, and an
    // aggregate's delta dropped updates of columns read only under their new names.
    await db.admin.query(
      `CREATE TABLE renamed (id int PRIMARY KEY, v int); INSERT INTO renamed VALUES (1, 10), (2, 20)`,
    );
    await db.admin.query(
      `SELECT pgtrickle.create_stream_table('renamed_st', 'SELECT x.k, x.val FROM renamed x(k, val)')`,
    );
    const outcome = await makeDifferential(db.admin, 'renamed_st');
    expect(outcome).toEqual({
      mode: 'FULL',
      reason: 'differential refresh does not support column aliases on table public.renamed',
    });
    await db.admin.query('UPDATE renamed SET v = v + 1');
    await refresh('renamed_st');
    expect(await divergence(db.admin, 'renamed_st')).toBe(0);
  });

  it('joins a grouped subquery by the names its column aliases give, even where they swap its own', async () => {
    // s(k, total) renames the subquery's `total` to k and its `k` to total: the join and the
    // filtered partner read s.k, the sum, not the group key the subquery calls k.
    await db.admin.query(`
      CREATE TABLE swap_p (id int PRIMARY KEY, tag text, want int);
      CREATE TABLE swap_l (id int PRIMARY KEY, g int, q int);
      INSERT INTO swap_p SELECT g, CASE WHEN g % 2 = 0 THEN 'x' ELSE 'y' END, g * 3 FROM generate_series(1, 20) g;
      INSERT INTO swap_l SELECT g, g % 20 + 1, 3 FROM generate_series(1, 60) g;`);
    await create(
      'swapped',
      `SELECT p.id, s.total FROM swap_p p,
         (SELECT l.g AS total, sum(l.q) AS k FROM swap_l l GROUP BY l.g) AS s(k, total)
       WHERE s.k = p.want AND p.tag = 'x'`,
    );
    // The same with the subquery's outputs in the other order: its own k is the group key.
    await create(
      'swapped_back',
      `SELECT p.id, s.total FROM swap_p p,
         (SELECT sum(l.q) AS total, l.g AS k FROM swap_l l GROUP BY l.g) AS s(k, total)
       WHERE s.k = p.want AND p.tag = 'x'`,
    );
    for (const st of ['swapped', 'swapped_back']) expect(await divergence(db.admin, st)).toBe(0);
    const steps = [
      'UPDATE swap_l SET q = q + 1 WHERE g IN (2, 4, 7)',
      'INSERT INTO swap_l SELECT 100 + g, 6, 3 FROM generate_series(1, 3) g',
      `UPDATE swap_p SET want = 12, tag = 'x' WHERE id IN (3, 5)`,
    ];
    for (const dml of steps) {
      await db.admin.query(dml);
      for (const st of ['swapped', 'swapped_back']) {
        await refresh(st);
        expect(await lastAction(db.admin, st)).toBe('DIFFERENTIAL');
        expect(await divergence(db.admin, st), `${st} after ${dml}`).toBe(0);
      }
    }
  });

  it('explains the delta statement, and with_analyze runs it without applying anything', async () => {
    await db.admin.query(`CREATE TABLE ex_a (id int PRIMARY KEY, k int); CREATE TABLE ex_b (k int PRIMARY KEY, v int);
      INSERT INTO ex_a SELECT i, i % 10 FROM generate_series(1, 100) i; INSERT INTO ex_b SELECT i, i FROM generate_series(0, 9) i`);
    await create('ex_join', 'SELECT ex_a.id, ex_b.v FROM ex_a JOIN ex_b ON ex_a.k = ex_b.k');
    const sql = (await db.admin.query(`SELECT pgtrickle.explain_st('ex_join') AS s`)).rows[0].s as string;
    expect(sql).toMatch(/^WITH __pgt_snap AS MATERIALIZED/);
    await db.admin.query('UPDATE ex_a SET k = 0 WHERE id = 1');
    const before = await divergence(db.admin, 'ex_join');
    const plan = JSON.parse(
      (await db.admin.query(`SELECT pgtrickle.explain_st('ex_join', with_analyze => true) AS p`)).rows[0].p,
    );
    expect(plan[0].Plan).toBeDefined();
    expect(await divergence(db.admin, 'ex_join')).toBe(before);
    // Only ex_a changed: the arms that read changes of ex_b are never executed.
    expect(JSON.stringify(plan)).toMatch(/"Actual Loops":0/);
    // The plan a refresh runs: generic, its frontier a parameter rather than a constant.
    expect(JSON.stringify(plan)).toMatch(/pg_snapshot_xmin\(\$1\)/);
    expect((await db.admin.query('SELECT name FROM pg_prepared_statements')).rows).toEqual([]);
    await refresh('ex_join');
    expect(await divergence(db.admin, 'ex_join')).toBe(0);
  });

  it('records what each differential refresh changed in the history', async () => {
    await db.admin.query(
      `CREATE TABLE hist (id int PRIMARY KEY, v int); INSERT INTO hist VALUES (1, 1), (2, 2)`,
    );
    await create('hist_st', 'SELECT hist.id, hist.v FROM hist');
    await step('hist_st', 'INSERT INTO hist VALUES (3, 3); DELETE FROM hist WHERE id = 1');
    const { rows } = await db.admin.query(
      `SELECT action, rows_inserted::int, rows_deleted::int, changes_consumed::int FROM pgtrickle.pgt_refresh_history
        WHERE pgt_id = pgtrickle._resolve('hist_st') ORDER BY refresh_id DESC LIMIT 1`,
    );
    expect(rows).toEqual([
      { action: 'DIFFERENTIAL', rows_inserted: 1, rows_deleted: 1, changes_consumed: 2 },
    ]);
  });
  it('consumes an UPDATE of columns the query does not read without changing the stream table', async () => {
    await db.admin.query(`CREATE TABLE pr_o (id int PRIMARY KEY, cid int, amount int, note text);
      CREATE TABLE pr_c (id int PRIMARY KEY, region text, phone text);
      INSERT INTO pr_c VALUES (1, 'north', 'a'), (2, 'south', 'b');
      INSERT INTO pr_o VALUES (1, 1, 10, 'x'), (2, 2, 20, 'y'), (3, 2, 5, NULL)`);
    await create(
      'pruned',
      'SELECT pr_c.region, sum(pr_o.amount) AS total FROM pr_o JOIN pr_c ON pr_o.cid = pr_c.id GROUP BY pr_c.region',
    );
    const last = async () =>
      (
        await db.admin.query(
          `SELECT rows_inserted::int + rows_deleted::int AS changed, changes_consumed::int AS consumed
             FROM pgtrickle.pgt_refresh_history WHERE pgt_id = pgtrickle._resolve('pruned') ORDER BY refresh_id DESC LIMIT 1`,
        )
      ).rows[0];
    await step('pruned', `UPDATE pr_o SET note = 'z'; UPDATE pr_c SET phone = NULL`);
    expect(await last()).toEqual({ changed: 0, consumed: 5 });
    await step(
      'pruned',
      `UPDATE pr_o SET note = NULL, amount = amount + 1 WHERE id = 1; UPDATE pr_c SET region = 'east' WHERE id = 2`,
    );
    expect((await db.admin.query('SELECT region, total::int FROM pruned ORDER BY region')).rows).toEqual([
      { region: 'east', total: 25 },
      { region: 'north', total: 11 },
    ]);
  });
  it('runs the delta from a generated function that only the owner may call, dropped with the stream table', async () => {
    await db.admin.query(`CREATE TABLE fn_src (id int PRIMARY KEY, v int); INSERT INTO fn_src VALUES (1, 1)`);
    await create('fn_st', 'SELECT fn_src.id, fn_src.v FROM fn_src');
    const fn = async () =>
      (
        await db.admin.query(
          `SELECT p.proname::text AS name, has_function_privilege('public', p.oid, 'EXECUTE') AS public
             FROM pg_proc p WHERE p.pronamespace = 'pgtrickle_delta'::regnamespace
              AND p.proname = 'st_' || pgtrickle._resolve('fn_st')`,
        )
      ).rows;
    expect(await fn()).toEqual([{ name: expect.stringMatching(/^st_\d+$/), public: false }]);
    await step('fn_st', 'UPDATE fn_src SET v = 2; INSERT INTO fn_src VALUES (2, 2)');
    const id = (await db.admin.query(`SELECT pgtrickle._resolve('fn_st')::text AS id`)).rows[0].id;
    await db.admin.query(`SELECT pgtrickle.drop_stream_table('fn_st')`);
    const { rows } = await db.admin.query(
      `SELECT to_regproc('pgtrickle_delta.st_' || $1::text) IS NULL AS gone`,
      [id],
    );
    expect(rows).toEqual([{ gone: true }]);
  });
  it('by default (auto_cost_fallback on), recomputes an AUTO stream table in full while its delta costs more than twice as much, trying the delta every 8th time', async () => {
    await db.admin.query(`CREATE TABLE ac_src (id int PRIMARY KEY, v int); INSERT INTO ac_src VALUES (1, 1)`);
    await create('auto_cost', 'SELECT ac_src.id, ac_src.v FROM ac_src');
    await step('auto_cost', 'UPDATE ac_src SET v = v + 1');
    const slowDelta = () =>
      db.admin.query(
        `UPDATE pgtrickle.pgt_stream_tables SET last_differential_ms = 500, last_full_ms = 100, full_since_differential = 0
          WHERE pgt_name = 'auto_cost'`,
      );
    await slowDelta();
    const actions: string[] = [];
    for (let i = 0; i < 9; i++) {
      await db.admin.query('UPDATE ac_src SET v = v + 1');
      const { notices: said } = await notices(db.admin, () => refresh('auto_cost'));
      actions.push((await lastAction(db.admin, 'auto_cost')) ?? '');
      if (i === 0)
        expect(said).toContain(
          'refresh of "auto_cost" recomputes in full: its last differential refresh took more than twice as long',
        );
      // A real full refresh of one row is far under 50 ms: keep the recorded cost high.
      await db.admin.query(
        `UPDATE pgtrickle.pgt_stream_tables SET last_full_ms = 100 WHERE pgt_name = 'auto_cost'`,
      );
      expect(await divergence(db.admin, 'auto_cost')).toBe(0);
    }
    expect(actions).toEqual([...Array(8).fill('FULL'), 'DIFFERENTIAL']);

    await db.admin.query(`SELECT pgtrickle.alter_stream_table('auto_cost', refresh_mode => 'DIFFERENTIAL')`);
    await slowDelta();
    await step('auto_cost', 'UPDATE ac_src SET v = v + 1');
    await db.admin.query('SET pgtrickle.auto_cost_fallback = off');
    await db.admin.query(`SELECT pgtrickle.alter_stream_table('auto_cost', refresh_mode => 'AUTO')`);
    await slowDelta();
    await step('auto_cost', 'UPDATE ac_src SET v = v + 1');
    await db.admin.query('RESET pgtrickle.auto_cost_fallback');
    // Off, a refresh records no cost: its catalog row is updated once, by _refresh_end.
    const { rows } = await db.admin.query(
      `SELECT last_differential_ms, last_full_ms, full_since_differential FROM pgtrickle.pgt_stream_tables
        WHERE pgt_name = 'auto_cost'`,
    );
    expect(rows).toEqual([{ last_differential_ms: 500, last_full_ms: 100, full_since_differential: 0 }]);
  });
});
