// Planning and execution time of TPC-H delta statements, read from explain_st(name, true) after
// one change cycle, beside the planning time of the defining query itself. Ratios, one run.
//   npx tsx bench/tpch/plan-time.ts --queries q08,q05 --sf 0.01
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { planStreamTable } from '../../cluster/planner/install.js';
import { migrate } from '../../sql/migrate.js';
import { withLabDatabase } from '../lab.js';
import { changeCycle, loadTpch } from './generate.js';
import { tpchQueries } from './queries.js';

interface Timing {
  query: string;
  strategy: string;
  deltaPlanMs: number;
  deltaExecMs: number;
  queryPlanMs: number;
}

interface ExplainJson {
  'Planning Time': number;
  'Execution Time'?: number;
}

export async function planTimes(ids: string[], sf: number, seed: number): Promise<Timing[]> {
  return withLabDatabase(
    async (client) => {
      await migrate(client);
      const state = await loadTpch(client, { sf, seed });
      const queries = tpchQueries(sf).filter((q) => ids.includes(q.id));
      const strategies = new Map<string, string>();
      for (const q of queries) {
        await client.query('SELECT pgtrickle.create_stream_table($1, $2)', [q.id, q.sql]);
        const { rows } = await client.query<{ id: string }>('SELECT pgtrickle._resolve($1) AS id', [q.id]);
        const outcome = await planStreamTable(client, String(rows[0]?.id));
        if (outcome.mode !== 'DIFFERENTIAL') throw new Error(`${q.id}: ${outcome.reason}`);
        strategies.set(q.id, outcome.plan.strategy);
        await client.query('SELECT pgtrickle.refresh_stream_table($1)', [q.id]);
      }
      await changeCycle(client, state, 0.001);
      const timings: Timing[] = [];
      for (const q of queries) {
        const delta = await explain(client, 'SELECT pgtrickle.explain_st($1, true) AS plan', [q.id]);
        const whole = await explain(client, `EXPLAIN (SUMMARY, FORMAT JSON) ${q.sql}`, []);
        timings.push({
          query: q.id,
          strategy: strategies.get(q.id) ?? '',
          deltaPlanMs: delta['Planning Time'],
          deltaExecMs: delta['Execution Time'] ?? 0,
          queryPlanMs: whole['Planning Time'],
        });
      }
      return timings;
    },
    { autovacuum: 'off' },
  );
}

async function explain(client: pg.Client, sql: string, params: unknown[]): Promise<ExplainJson> {
  const { rows } = await client.query<Record<string, unknown>>(sql, params);
  const value = Object.values(rows[0] ?? {})[0];
  const parsed = (typeof value === 'string' ? JSON.parse(value) : value) as ExplainJson[];
  if (!parsed[0]) throw new Error(`no plan for ${sql}`);
  return parsed[0];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      queries: { type: 'string', default: 'q08' },
      sf: { type: 'string', default: '0.01' },
      seed: { type: 'string', default: '12' },
    },
  });
  const timings = await planTimes(values.queries.split(','), Number(values.sf), Number(values.seed));
  console.log('query | strategy             | delta plan ms | delta exec ms | query plan ms');
  for (const t of timings) {
    console.log(
      [
        t.query.padEnd(5),
        t.strategy.padEnd(20),
        t.deltaPlanMs.toFixed(1).padStart(13),
        t.deltaExecMs.toFixed(1).padStart(13),
        t.queryPlanMs.toFixed(1).padStart(13),
      ].join(' | '),
    );
  }
}
