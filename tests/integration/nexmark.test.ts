// Nexmark under sustained DML: the queries as stream tables (AUTO), then batches of new
// persons, auctions and bids, updates and deletes, with a refresh of every stream table and the
// oracle (I5) after each batch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeBatch, loadNexmark, type NexmarkState } from '../../bench/nexmark/generate.js';
import { nexmarkQueries } from '../../bench/nexmark/queries.js';
import { ident } from '../../shared/pg/quote.js';
import { divergence, lastAction, makeDifferential, migratedDatabase, type TestDb } from '../support/db.js';

const SEED = 7;
// ~100 s of event time at 100 events/s: 10 ten-second windows, 200 persons, 600 auctions.
const EVENTS = 10_000;
const BATCHES = 4;
// New events per batch (plus a tenth of that in updated bids and deleted bids).
const BATCH_EVENTS = 1_000;

// The queries that compile to DIFFERENTIAL today; one dropping out of this list is a regression.
const DIFFERENTIAL_TODAY: readonly string[] = [
  'nx_q0',
  'nx_q1',
  'nx_q2',
  'nx_q3',
  'nx_q4',
  'nx_q5',
  'nx_q6',
  'nx_q7',
  'nx_q8',
  'nx_q9',
  'nx_q10',
  'nx_q11',
  'nx_q13',
  'nx_q14',
  'nx_q15',
  'nx_q16',
  'nx_q17',
  'nx_q18',
  'nx_q19',
  'nx_q20',
  'nx_q21',
  'nx_q22',
];

describe('Nexmark queries as stream tables stay equal to their queries under sustained DML', () => {
  let db: TestDb;
  let state: NexmarkState;
  const outcomes = new Map<string, { mode: string; detail: string; rows: number }>();

  beforeAll(async () => {
    db = await migratedDatabase();
    state = await loadNexmark(db.admin, { events: EVENTS, seed: SEED });
    // Every refresh of a compiled query is checked as a delta: AUTO must not trade it for a
    // full recompute because an earlier delta was slow.
    await db.admin.query('SET pgtrickle.auto_cost_fallback = off');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('creates every query and compiles those it can to DIFFERENTIAL', async () => {
    const sql = db.admin;
    for (const q of nexmarkQueries) {
      await sql.query('SELECT pgtrickle.create_stream_table($1, $2, refresh_mode => $3)', [
        q.id,
        q.sql,
        'AUTO',
      ]);
      const outcome = await makeDifferential(sql, q.id);
      const { rows } = await sql.query<{ n: string }>(`SELECT count(*) AS n FROM ${ident(q.id)}`);
      outcomes.set(q.id, {
        mode: outcome.mode,
        detail: outcome.mode === 'FULL' ? outcome.reason : `strategy ${outcome.plan.strategy}`,
        rows: Number(rows[0]?.n),
      });
      expect(await divergence(sql, q.id), q.id).toBe(0);
    }
    console.table(
      Object.fromEntries(
        [...outcomes].map(([id, o]) => [id, { mode: o.mode, rows: o.rows, detail: o.detail }]),
      ),
    );
    for (const [id, o] of outcomes) expect(o.rows, `${id} returns rows`).toBeGreaterThan(0);
    const differential = [...outcomes].filter(([, o]) => o.mode === 'DIFFERENTIAL').map(([id]) => id);
    expect(differential).toEqual(expect.arrayContaining([...DIFFERENTIAL_TODAY]));
  });

  it(`keeps every stream table equal to its query over ${BATCHES} batches of DML`, async () => {
    const sql = db.admin;
    for (let batch = 0; batch < BATCHES; batch++) {
      await changeBatch(sql, state, BATCH_EVENTS);
      for (const q of nexmarkQueries) {
        await sql.query('SELECT pgtrickle.refresh_stream_table($1)', [q.id]);
        if (outcomes.get(q.id)?.mode === 'DIFFERENTIAL') {
          expect(await lastAction(sql, q.id), `${q.id} batch ${batch}`).toBe('DIFFERENTIAL');
        }
        expect(await divergence(sql, q.id), `${q.id} batch ${batch}`).toBe(0);
      }
    }
  }, 120_000);
});
